"""The training-run configuration: one strict pydantic model per YAML file under configs/training/.

Every knob of a run lives here so that a run is reproducible from its `config.yaml` alone (the trainer writes
the resolved config into the output folder). Unknown keys are errors: a typo must not silently train with
defaults for hours. The policy package never imports `agent`, so this model carries its own strictness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Strict):
    """Which architecture to build when not fine-tuning from a checkpoint (`--init`)."""

    preset: Literal["tiny", "sim-small", "pi05"] = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)


class OptimizerSettings(_Strict):
    """AdamW with linear warmup then cosine decay to `final_lr_ratio * lr` (openpi's schedule shape)."""

    lr: float = Field(default=1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_steps: int = Field(default=100, ge=0)
    decay_steps: int | None = Field(default=None, ge=1, description="cosine length; default = total steps")
    final_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    grad_clip: float = Field(default=1.0, gt=0)


class LossSettings(_Strict):
    """The co-training objective: alpha * flow matching + FAST-token CE + subtask CE.

    Each step's batch is split in two forward passes: `subtask_fraction` of the examples are System-2
    examples (subtask prompt -> subtask text + EOS, CE only) and the rest are System-1 examples (action prompt
    -> FAST tokens + EOS as CE targets, and the chunk as the flow-matching target). Splitting keeps the two CE
    terms separate, so the few subtask tokens are not drowned by the many FAST tokens in one mean.
    """

    flow_weight: float = Field(default=1.0, ge=0, description="alpha; the paper's post-training uses 10, KI allows 1")
    fast_weight: float = Field(default=1.0, ge=0)
    subtask_weight: float = Field(default=1.0, ge=0)
    subtask_fraction: float = Field(default=0.25, ge=0, lt=1)
    subtask_ce: bool = True
    fast_ce: bool = True
    knowledge_insulation: bool = True
    fast_vocab_size: int = Field(default=512, ge=16, le=1024)
    fast_scale: float = Field(default=10.0, gt=0)
    fast_fit_chunks: int = Field(default=4000, ge=16, description="chunks used to fit the FAST tokenizer's BPE")
    max_fast_tokens: int = Field(default=96, ge=8)
    max_token_len: int | None = Field(default=None, ge=16, description="prompt+target length; default: the model's")


class AugmentSettings(_Strict):
    """Image augmentation as openpi does it: geometric only on non-wrist cameras, colour on all (configurable)."""

    enabled: bool = True
    crop_scale: float = Field(default=0.95, gt=0.5, le=1.0, description="side fraction of the random crop")
    rotate_deg: float = Field(default=5.0, ge=0, le=45)
    brightness: float = Field(default=0.3, ge=0, lt=1)
    contrast: float = Field(default=0.4, ge=0, lt=1)
    saturation: float = Field(default=0.5, ge=0, lt=1)
    color_on_wrist: bool = True
    wrist_cameras: list[str] | None = Field(default=None, description="default: camera names containing 'wrist'")


class FinetuneSettings(_Strict):
    """What to train when starting from a checkpoint: freeze parts by name pattern, LoRA on the expert."""

    freeze_vision: bool = False
    freeze_patterns: list[str] = Field(default_factory=list, description="extra regexes of parameter names to freeze")
    lora_rank: int = Field(default=0, ge=0, description="0 = full fine-tuning")
    lora_alpha: float = Field(default=16.0, gt=0)
    lora_patterns: list[str] = Field(
        default_factory=lambda: [r"expert"], description="regexes of Linear module names that get LoRA adapters"
    )


class ActionFrameSettings(_Strict):
    """Actions the model predicts relative to the chunk's start state (policy/action_frame.py), by name."""

    relative: list[str] = Field(default_factory=list, description="actions predicted as action - same-named state")
    base_pose: list[str] | None = Field(
        default=None, description="(x, y, yaw) action names of a planar base pose, predicted as an offset"
    )
    base_frame: Literal["robot", "world"] = Field(
        default="robot", description="axes of the base offset: the base's own frame or the world's (odometry)"
    )
    base_yaw: Literal["offset", "absolute"] = Field(
        default="offset", description="the heading as an offset from the start heading, or the target heading itself"
    )
    yaw_low: float | None = Field(
        default=None, description="absolute headings are expressed in [yaw_low, yaw_low + 2 pi): the state's range"
    )

    @model_validator(mode="after")
    def _absolute_heading_has_a_range(self) -> ActionFrameSettings:
        if self.base_yaw == "absolute" and self.yaw_low is None:
            raise ValueError("base_yaw: absolute needs yaw_low (the low end of the state's heading range)")
        return self

    def as_metadata(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "relative": list(self.relative),
            "base_pose": list(self.base_pose) if self.base_pose else None,
        }
        if self.base_frame != "robot":  # checkpoints written before the option keep their exact metadata
            spec["base_frame"] = self.base_frame
        if self.base_yaw != "offset":
            spec["base_yaw"] = self.base_yaw
            spec["yaw_low"] = self.yaw_low
        return spec


class DataSettings(_Strict):
    """Every frame is decoded, resized and tokenized once and training reads from memory (policy/training/data.py)."""

    max_episodes: int | None = Field(default=None, ge=1)
    action_frame: ActionFrameSettings | None = Field(
        default=None, description="None: the model predicts absolute actions in robot units"
    )
    extra_prepared: list[str] = Field(
        default_factory=list,
        description="further prepared data folders (same robot, tokenizer and state stats) trained on together with "
        "the main data, e.g. recovery demonstrations collected for one skill",
    )
    subtask_weights: dict[str, int] = Field(
        default_factory=dict,
        description="frames whose subtask starts with a key (e.g. 'pick up') are drawn that many times per pass "
        "over the data, for a skill that needs more practice than its share of the frames gives it",
    )

    @model_validator(mode="after")
    def _weights_are_repeats(self) -> DataSettings:
        bad = {key: n for key, n in self.subtask_weights.items() if n < 1 or not key.strip()}
        if bad:
            raise ValueError(f"subtask_weights must map a subtask prefix to a whole number >= 1, got {bad}")
        return self


class TrainConfig(_Strict):
    """One training run. `steps` counts optimizer steps over the global batch (all DDP ranks together)."""

    name: str = "run"
    seed: int = 0
    steps: int = Field(default=1000, ge=1)
    batch_size: int = Field(default=8, ge=1, description="global batch; divided across DDP ranks")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads; default leaves torch's choice")
    model: ModelSettings = Field(default_factory=ModelSettings)
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    loss: LossSettings = Field(default_factory=LossSettings)
    augment: AugmentSettings = Field(default_factory=AugmentSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    ema_decay: float = Field(default=0.99, ge=0, lt=1, description="0 disables EMA")
    save_every: int = Field(default=500, ge=1)
    keep_last: int = Field(default=2, ge=1)
    log_every: int = Field(default=10, ge=1)
    export_dtype: Literal["float32", "float16", "bfloat16"] = "bfloat16"
    time_limit_s: float | None = Field(
        default=None, gt=0, description="stop (save + export) once this much wall time has passed in the loop"
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if not (self.loss.subtask_ce or self.loss.fast_ce or self.loss.flow_weight > 0):
            raise ValueError("loss: every term is off (subtask_ce, fast_ce false and flow_weight 0); nothing to train")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: top level must be a mapping")
        for key, value in (overrides or {}).items():
            data[key] = value
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
