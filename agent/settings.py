"""The deployment configuration: which robots, which policy worker, which System-2 backend, API settings.

One pydantic model validated from configs/deployments/<name>.yaml (plus env and CLI overrides), so a
process reads its whole setup in one place. Sections are strict: a typo is an error at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.config import LoggingConfig, StrictModel, load_config, resolve_config_path


class RobotEntry(StrictModel):
    """A robot this deployment drives: a registry name plus constructor options."""

    id: str = "sim-kitchen"
    kind: str = "sim-kitchen"
    options: dict[str, object] = Field(default_factory=dict)


class PolicyWorkerConfig(StrictModel):
    url: str = "ws://127.0.0.1:8765"
    api_key: str | None = None
    timeout_s: float = Field(default=5.0, gt=0)


class System2Config(StrictModel):
    backend: Literal["local", "openai", "coach-only"] = "local"
    openai_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = "hearth-system2"
    openai_api_key: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    every_k_chunks: int = Field(default=4, ge=1)


class WebhookConfig(StrictModel):
    """A home-automation endpoint told about task state changes; bodies are signed with HMAC-SHA256(secret)."""

    url: str
    secret: str = Field(min_length=16)
    events: list[str] = Field(default_factory=lambda: ["task_state"])
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    database_url: str = "sqlite:///runs/hearth.db"
    cors_origins: list[str] = Field(default_factory=list)
    task_rate_limit_per_minute: int = Field(default=30, ge=1)
    max_task_text_chars: int = Field(default=500, ge=1)
    idempotency_ttl_s: float = Field(default=86400.0, gt=0)
    live_max_fps: float = Field(default=15.0, gt=0)
    webhooks: list[WebhookConfig] = Field(default_factory=list)


class DeploymentConfig(StrictModel):
    name: str = "default"
    robots: list[RobotEntry] = Field(default_factory=lambda: [RobotEntry()])
    policy: PolicyWorkerConfig = Field(default_factory=PolicyWorkerConfig)
    system2: System2Config = Field(default_factory=System2Config)
    api: ApiConfig = Field(default_factory=ApiConfig)
    episodes_dir: Path = Path("runs/episodes")
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # agent.orchestrator.OrchestratorConfig fields (e.g. worker_late_s, max_task_s); validated when runtimes are built.
    orchestrator: dict[str, object] = Field(default_factory=dict)


def load_deployment(name_or_path: str = "local", overrides: list[str] | tuple[str, ...] = ()) -> DeploymentConfig:
    """Load configs/deployments/<name>.yaml (or a path) with HEARTH_* env and --set overrides applied."""
    return load_config(DeploymentConfig, resolve_config_path("deployments", name_or_path), overrides)
