"""Training-time image augmentation on model-ready batches (float images in [-1, 1], [B, n_cam, 3, S, S]).

What openpi does for π₀.₅: a random 95 % crop resized back and a small rotation (±5°) on the base cameras, and
colour jitter (brightness, contrast, saturation). Wrist cameras move with the gripper, so geometric jitter there
would teach the wrong invariance: they get colour jitter only (or nothing, `color_on_wrist: false`).
Crop and rotation are one affine warp per image (a single grid_sample), so the cost is one resampling pass.
All randomness comes from the caller's generator: a step's augmentation is reproducible on resume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from policy.training.config import AugmentSettings


def wrist_flags(camera_names: Sequence[str], settings: AugmentSettings) -> list[bool]:
    if settings.wrist_cameras is not None:
        return [name in settings.wrist_cameras for name in camera_names]
    return ["wrist" in name.lower() for name in camera_names]


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device) * (high - low) + low


def random_crop_rotate(
    images: torch.Tensor, crop_scale: float, rotate_deg: float, generator: torch.Generator
) -> torch.Tensor:
    """images [N, 3, S, S]: crop a random `crop_scale` window, rotate by U(-deg, deg), resample to S x S."""
    n = images.shape[0]
    angle = _uniform((n,), -rotate_deg, rotate_deg, generator, images.device) * (math.pi / 180.0)
    max_shift = 1.0 - crop_scale
    tx = _uniform((n,), -max_shift, max_shift, generator, images.device)
    ty = _uniform((n,), -max_shift, max_shift, generator, images.device)
    cos, sin = torch.cos(angle) * crop_scale, torch.sin(angle) * crop_scale
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(images01: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """images01 [N, 3, S, S] in [0, 1]: random brightness, contrast and saturation, each a per-image factor."""
    n = images01.shape[0]
    shape = (n, 1, 1, 1)
    out = images01
    if settings.brightness > 0:
        out = out * _uniform(shape, 1 - settings.brightness, 1 + settings.brightness, generator, out.device)
    if settings.contrast > 0:
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        factor = _uniform(shape, 1 - settings.contrast, 1 + settings.contrast, generator, out.device)
        out = (out - mean) * factor + mean
    if settings.saturation > 0:
        gray = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3]).expand_as(out)
        factor = _uniform(shape, 1 - settings.saturation, 1 + settings.saturation, generator, out.device)
        out = (out - gray) * factor + gray
    return out.clamp(0.0, 1.0)


def augment_images(
    images: torch.Tensor, wrist: Sequence[bool], settings: AugmentSettings, generator: torch.Generator
) -> torch.Tensor:
    """Augment a [B, n_cam, 3, S, S] batch in [-1, 1]; returns a new tensor of the same shape and range."""
    if not settings.enabled:
        return images
    if images.ndim != 5 or images.shape[1] != len(wrist):
        raise ValueError(f"expected images [B, {len(wrist)}, 3, S, S], got {tuple(images.shape)}")
    cams = []
    for cam, is_wrist in enumerate(wrist):
        x = images[:, cam]
        if not is_wrist and (settings.crop_scale < 1.0 or settings.rotate_deg > 0):
            x = random_crop_rotate(x, settings.crop_scale, settings.rotate_deg, generator)
        has_color = settings.brightness > 0 or settings.contrast > 0 or settings.saturation > 0
        if has_color and (not is_wrist or settings.color_on_wrist):
            x = color_jitter((x + 1.0) * 0.5, settings, generator) * 2.0 - 1.0
        cams.append(x)
    return torch.stack(cams, dim=1)
