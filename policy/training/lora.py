"""LoRA adapters for nn.Linear layers, used to fine-tune the action expert cheaply.

`LoRALinear` subclasses nn.Linear and keeps the original `weight`/`bias` names, so a checkpoint loads into it
unchanged; the adapters add `lora_a`/`lora_b`. `lora_b` starts at zero, so the wrapped model computes exactly
what the base model did until training moves it. `merged_state_dict` folds the adapters back into plain
weights, so exported checkpoints need no LoRA code to load.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn


class LoRALinear(nn.Linear):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        self.weight = base.weight
        self.bias = base.bias
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device, dtype=torch.float32))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device, dtype=torch.float32))
        nn.init.kaiming_uniform_(self.lora_a, a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        update = (x.to(self.lora_a.dtype) @ self.lora_a.t()) @ self.lora_b.t()
        return out + (update * self.scaling).to(out.dtype)


def apply_lora(model: nn.Module, patterns: Sequence[str], rank: int, alpha: float) -> list[str]:
    """Replace every nn.Linear whose qualified name matches a pattern; freeze everything but the adapters.

    Returns the wrapped module names. Raises if nothing matched, because a LoRA run that trains nothing is a bug.
    """
    if rank <= 0:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    compiled = [re.compile(p) for p in patterns]
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and not isinstance(module, LoRALinear)
        and any(p.search(name) for p in compiled)
    ]
    if not targets:
        raise ValueError(f"LoRA patterns {list(patterns)} match no nn.Linear module of the model")
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))
    for pname, param in model.named_parameters():
        param.requires_grad = pname.rsplit(".", 1)[-1] in ("lora_a", "lora_b")
    return targets


def merged_state_dict(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The state dict of `model` (or the given one, e.g. EMA-averaged) with adapters folded into the weights."""
    state = dict(model.state_dict() if state is None else state)
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            prefix = f"{name}." if name else ""
            a, b = state.pop(prefix + "lora_a"), state.pop(prefix + "lora_b")
            weight = state[prefix + "weight"]
            state[prefix + "weight"] = (weight.float() + (b.float() @ a.float()) * module.scaling).to(weight.dtype)
    return state
