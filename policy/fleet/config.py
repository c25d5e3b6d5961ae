"""What a fleet deployment is made of, validated before Ray starts: the policy to serve and how to scale it.

Why a pydantic model: the same settings arrive from `hearth serve-policy --ray` flags and from a Ray Serve config
file (`applications[].args`, see policy/fleet/app.py `app_builder`), and both must be checked the same way. The
policy itself travels as a `PolicySource` (a checkpoint path or a random preset with its robot shape), never as
weights: every replica builds its own copy on its own device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from policy.mappings import DEFAULT_MAX_IMAGE_SIDE, MAPPING_NAMES


class PolicySource(BaseModel):
    """Where a replica gets its policy: exactly one of `checkpoint` or `random_preset`.

    `version` names what is being served (default: the checkpoint folder's name); replies carry it, so a rollout
    can be watched from the client side.
    """

    checkpoint: str | None = None
    random_preset: str | None = None
    camera_names: list[str] = Field(default_factory=lambda: ["head", "wrist"])
    state_names: list[str] | None = None
    action_names: list[str] | None = None
    control_hz: float = 20.0
    seed: int = 0
    robot_type: str = ""
    robot_interface_version: int | None = None
    overrides: dict[str, Any] = Field(default_factory=dict, description="Random preset: Pi05Config overrides.")
    version: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PolicySource:
        if (self.checkpoint is None) == (self.random_preset is None):
            raise ValueError("give exactly one of checkpoint or random_preset")
        if self.checkpoint is not None and not Path(self.checkpoint).is_dir():
            raise ValueError(f"checkpoint folder {self.checkpoint} does not exist")
        return self

    @property
    def label(self) -> str:
        if self.version:
            return self.version
        if self.checkpoint is not None:
            return Path(self.checkpoint).name
        return f"random-{self.random_preset}-seed{self.seed}"

    def build(self, device: str | None) -> Any:
        """The Pi05Policy (heavy: imports torch and loads weights)."""
        from policy.inference import Pi05Policy

        if self.checkpoint is not None:
            return Pi05Policy.from_checkpoint(self.checkpoint, device=device)
        return Pi05Policy.build_random(
            self.random_preset or "tiny",
            camera_names=tuple(self.camera_names),
            state_names=self.state_names,
            action_names=self.action_names,
            control_hz=self.control_hz,
            seed=self.seed,
            device=device,
            robot_type=self.robot_type,
            robot_interface_version=self.robot_interface_version,
            **self.overrides,
        )


class FleetConfig(BaseModel):
    """A fleet: the policy, its replicas and their resources, batching, the wire mapping and the listen address."""

    policy: PolicySource | None = Field(
        default=None, description="None only inside a Serve config file's args (the policy is the model's user_config)."
    )
    replicas: int = Field(default=1, ge=1, description="Fixed replica count (ignored when autoscaling).")
    min_replicas: int | None = Field(default=None, ge=0, description="Autoscaling lower bound.")
    max_replicas: int | None = Field(default=None, ge=1, description="Autoscaling upper bound.")
    target_ongoing_requests: float = Field(
        default=4.0, gt=0, description="Autoscaling target: in-flight chunk requests per model replica."
    )
    gpus_per_replica: float = Field(default=0.0, ge=0, description="0 = CPU replicas (tests); 1 = one GPU each.")
    cpus_per_replica: float = Field(default=1.0, ge=0)
    ingress_replicas: int = Field(default=1, ge=1, description="WebSocket front ends (light: no model, no GPU).")
    max_batch: int = Field(default=8, ge=1, description="Most requests per model call (Serve batching).")
    batch_wait_ms: float = Field(default=5.0, ge=0, description="Longest wait for a batch to fill.")
    health_check_period_s: float = Field(default=5.0, gt=0)
    health_check_timeout_s: float = Field(default=30.0, gt=0)
    mapping: str = "hearth"
    default_prompt: str | None = None
    api_keys: list[str] = Field(default_factory=list)
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE
    max_connections: int = Field(default=10_000, ge=1, description="Open WebSockets per ingress replica.")
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    app_name: str = "hearth-policy"

    @model_validator(mode="after")
    def _check(self) -> FleetConfig:
        if self.mapping not in MAPPING_NAMES:
            raise ValueError(f"unknown mapping {self.mapping!r}; expected one of {list(MAPPING_NAMES)}")
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("autoscaling needs both min_replicas and max_replicas")
        if self.max_replicas is not None and self.min_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must be <= max_replicas")
        return self

    @property
    def autoscaling(self) -> dict[str, Any] | None:
        """Ray Serve's autoscaling_config (scales model replicas on in-flight requests), or None for a fixed count."""
        if self.max_replicas is None:
            return None
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "initial_replicas": max(self.min_replicas or 0, 1),
            "target_ongoing_requests": self.target_ongoing_requests,
        }

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_replica > 0 else "cpu"
