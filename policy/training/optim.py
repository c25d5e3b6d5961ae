"""AdamW with decoupled weight decay on matrices only, and a warmup + cosine learning-rate schedule.

Norm scales, biases and 1-D parameters get no weight decay (decaying a norm's scale towards zero only hurts).
The schedule is a pure function of the step so that a resumed run continues on exactly the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from policy.training.config import OptimizerSettings


def parameter_groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for _, param in named:
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if not groups:
        raise ValueError("no trainable parameters: everything is frozen (check finetune.freeze_* and lora settings)")
    return groups


def build_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.AdamW:
    groups = parameter_groups(model.named_parameters(), settings.weight_decay)
    return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas, eps=settings.eps)


def lr_factor(step: int, warmup_steps: int, decay_steps: int, final_ratio: float) -> float:
    """Multiplier of the peak lr at `step` (0-based): linear warmup from ~0, cosine down to `final_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = max(1, decay_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, settings: OptimizerSettings, total_steps: int):
    decay_steps = settings.decay_steps or total_steps
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, settings.warmup_steps, decay_steps, settings.final_lr_ratio)
    )
