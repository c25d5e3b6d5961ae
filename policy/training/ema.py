"""Exponential moving average of the trainable weights (openpi keeps one at 0.99; we export it).

The shadow copy is float32 even when training in bf16 autocast, and it lives beside the weights on the same
device. Only trainable parameters are tracked: frozen ones are identical in the average anyway.
"""

from __future__ import annotations

import torch
from torch import nn


class ExponentialMovingAverage:
    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {
            name: param.detach().float().clone() for name, param in model.named_parameters() if param.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            shadow = self.shadow.get(name)
            if shadow is not None:
                shadow.lerp_(param.detach().float(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        unexpected = set(state) - set(self.shadow)
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not match the model: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        for name, value in state.items():
            self.shadow[name].copy_(value)

    def averaged_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with trainable weights replaced by their averages (for export)."""
        state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        for name, shadow in self.shadow.items():
            if name in state:
                state[name] = shadow.to(state[name].dtype).clone()
        return state
