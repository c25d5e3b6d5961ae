"""Shared helpers for model tests: fully random weights (no zero-initialised gates) and random batches."""

from __future__ import annotations

import torch
from torch import nn

from policy.model.config import Pi05Config
from policy.model.pi05 import Pi05Batch


def randomize_(module: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    """Overwrite every parameter with N(0, std²) so zero-initialised paths (AdaRMS gates) are exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * std)
    return module


def random_batch(
    config: Pi05Config, batch_size: int = 2, num_cameras: int = 2, seed: int = 0, text_len: int = 12
) -> Pi05Batch:
    """Random images/prompts/states with some padding and one absent camera, plus training targets."""
    g = torch.Generator().manual_seed(seed)
    size = config.image_size
    lengths = torch.tensor([text_len - 3 - i for i in range(batch_size)]).clamp(min=2)
    token_mask = torch.arange(text_len)[None, :] < lengths[:, None]
    tokens = torch.randint(3, config.vocab_size, (batch_size, text_len), generator=g) * token_mask
    image_masks = torch.ones(batch_size, num_cameras, dtype=torch.bool)
    image_masks[-1, -1] = False
    action_mask = torch.zeros(batch_size, config.max_action_dim, dtype=torch.bool)
    action_mask[:, :7] = True
    actions = torch.randn(batch_size, config.action_horizon, config.max_action_dim, generator=g) * action_mask[:, None]
    state = torch.zeros(batch_size, config.max_state_dim)
    state[:, :8] = torch.rand(batch_size, 8, generator=g) * 2 - 1  # 8 real state dims, zero-padded like the policy's
    return Pi05Batch(
        images=torch.rand(batch_size, num_cameras, 3, size, size, generator=g) * 2 - 1,
        image_masks=image_masks,
        tokens=tokens,
        token_mask=token_mask,
        actions=actions,
        action_mask=action_mask,
        state=state,
    )
