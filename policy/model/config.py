"""Sizes and switches of the π₀.₅ model, with the three presets hearth ships.

`pi05` reproduces the released model (PaliGemma = SigLIP So400m/14 + Gemma 2B, plus the Gemma-300M action
expert; Physical-Intelligence/openpi src/openpi/models/gemma.py `get_config`, src/openpi/models/siglip.py; huggingface/lerobot
src/lerobot/policies/pi05/modeling_pi05.py) so `lerobot/pi05_base` loads strictly.
`sim-small` is the demo model, sized to run a 50-step chunk on two CPU cores; `tiny` is for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

PALIGEMMA_VOCAB_SIZE = 257_152


@dataclass
class SiglipConfig:
    """SigLIP vision tower (ViT with learned position embeddings, no pooling head)."""

    image_size: int = 224
    patch_size: int = 14
    width: int = 1152
    depth: int = 27
    mlp_dim: int = 4304
    num_heads: int = 16
    layer_norm_eps: float = 1e-6

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass
class GemmaConfig:
    """One Gemma expert (decoder stack). Both experts must share depth, heads and head_dim."""

    width: int = 2048
    depth: int = 18
    mlp_dim: int = 16_384
    num_heads: int = 8
    num_kv_heads: int = 1
    head_dim: int = 256


@dataclass
class Pi05Config:
    """Everything needed to build a Pi05Model; serialised into a checkpoint's config.json."""

    vision: SiglipConfig = field(default_factory=SiglipConfig)
    vlm: GemmaConfig = field(default_factory=GemmaConfig)
    expert: GemmaConfig = field(
        default_factory=lambda: GemmaConfig(
            width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1, head_dim=256
        )
    )
    vocab_size: int = PALIGEMMA_VOCAB_SIZE
    max_token_len: int = 200
    action_horizon: int = 50
    max_action_dim: int = 32
    max_state_dim: int = 32
    num_steps: int = 10
    rms_norm_eps: float = 1e-6
    rope_max_wavelength: float = 10_000.0
    time_min_period: float = 4e-3
    time_max_period: float = 4.0
    # Knowledge insulation (arXiv 2505.23705): the action expert sees detached VLM keys/values, so the
    # flow-matching loss cannot change the VLM; the VLM is trained by the text/FAST cross-entropy instead.
    knowledge_insulation: bool = False
    ce_loss_weight: float = 1.0
    # π₀'s continuous state token (openpi src/openpi/models/pi0.py `state_proj`): the normalized state, projected
    # to one expert token at the start of the suffix. π₀.₅ only writes the state into the prompt as 256 bins, and
    # measurements showed System 1 ignoring it; the released pi05 weights have no such projection, so the `pi05`
    # preset keeps this off and loads strictly.
    state_token: bool = False
    # Text ids the model itself needs (System-2 decoding stops at EOS); PaliGemma uses pad 0, eos 1.
    eos_token_id: int = 1
    pad_token_id: int = 0
    # lerobot/pi05_base carries an (unused) LM head on the action expert; it is part of the 3,616,757,520
    # parameters, so the pi05 preset keeps it for strict loading. Small presets drop it.
    expert_lm_head: bool = False
    preset: str = "custom"

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = SiglipConfig(**self.vision)
        if isinstance(self.vlm, dict):
            self.vlm = GemmaConfig(**self.vlm)
        if isinstance(self.expert, dict):
            self.expert = GemmaConfig(**self.expert)
        for name in ("depth", "num_heads", "num_kv_heads", "head_dim"):
            if getattr(self.vlm, name) != getattr(self.expert, name):
                raise ValueError(
                    f"VLM and action expert must share {name} for joint attention "
                    f"(got {getattr(self.vlm, name)} and {getattr(self.expert, name)})"
                )
        if self.vlm.num_heads % self.vlm.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if self.vision.image_size % self.vision.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if self.vlm.head_dim % 2:
            raise ValueError("head_dim must be even for rotary embeddings")

    @property
    def image_size(self) -> int:
        return self.vision.image_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pi05Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Pi05Config fields {unknown}; known: {sorted(known)}")
        return cls(**data)


PresetName = Literal["tiny", "sim-small", "pi05"]


def _tiny() -> Pi05Config:
    return Pi05Config(
        vision=SiglipConfig(image_size=32, patch_size=8, width=32, depth=2, mlp_dim=64, num_heads=2),
        vlm=GemmaConfig(width=64, depth=2, mlp_dim=128, num_heads=2, num_kv_heads=1, head_dim=16),
        expert=GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=16),
        vocab_size=4096,
        max_token_len=48,
        state_token=True,
        preset="tiny",
    )


def _sim_small() -> Pi05Config:
    """The bundled household checkpoint's size: trainable on 2 CPU cores in hours.

    Native 96 px camera frames (a 3-4 px object at 64 px was too small to line up with) cut into 12 px patches, so
    each camera is still 64 tokens; a VLM as narrow as the expert, because on a CPU the prefix (two cameras +
    prompt) dominates the step time and a 128-wide VLM doubled the samples per second of the 256-wide one.
    """
    return Pi05Config(
        vision=SiglipConfig(image_size=96, patch_size=12, width=128, depth=3, mlp_dim=512, num_heads=4),
        vlm=GemmaConfig(width=128, depth=4, mlp_dim=512, num_heads=4, num_kv_heads=1, head_dim=32),
        expert=GemmaConfig(width=128, depth=4, mlp_dim=512, num_heads=4, num_kv_heads=1, head_dim=32),
        vocab_size=4096,
        max_token_len=48,
        state_token=True,
        preset="sim-small",
    )


def _pi05() -> Pi05Config:
    return Pi05Config(expert_lm_head=True, preset="pi05")


_PRESETS = {"tiny": _tiny, "sim-small": _sim_small, "pi05": _pi05}


def preset_names() -> list[str]:
    return list(_PRESETS)


def preset(name: PresetName | str, **overrides: Any) -> Pi05Config:
    """A fresh config for `name`; keyword overrides replace top-level fields (dicts allowed for sub-configs)."""
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {preset_names()}")
    config = _PRESETS[name]()
    if not overrides:
        return config
    data = config.to_dict()
    for key, value in overrides.items():
        if key not in data:
            raise ValueError(f"unknown Pi05Config field {key!r}")
        if isinstance(value, dict) and isinstance(data[key], dict):
            data[key] = {**data[key], **value}
        elif dataclasses.is_dataclass(value):
            data[key] = dataclasses.asdict(value)
        else:
            data[key] = value
    return Pi05Config.from_dict(data)
