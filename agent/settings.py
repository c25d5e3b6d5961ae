"""The deployment configuration: which robots, which policy worker, which System-2 backend, API settings.

One pydantic model validated from configs/deployments/<name>.yaml (plus env and CLI overrides), so a
process reads its whole setup in one place. Sections are strict: a typo is an error at start.

A deployment's state (the database and the episode datasets) lives under one folder, `home` (`HEARTH_HOME`,
default `runs`): `<home>/hearth.db` and `<home>/episodes/<robot id>/`. Every command that reads or writes state
(`demo`, `serve-api`, `run`, `tokens`, `episodes`) resolves it from here, so a token made with `hearth tokens
create` is the one the API checks and a headless episode lands in the dataset the console reviews.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

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
    # the checkpoint folder the worker serves (only its tokenizer and config.json are read): tasks whose prompt
    # exceeds its token budget are refused when created (422 task_too_long_for_policy) instead of failing later
    checkpoint: Path | None = None


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
    # unless set, DeploymentConfig places it under its home: sqlite:///<home>/hearth.db
    database_url: str = "sqlite:///runs/hearth.db"
    cors_origins: list[str] = Field(default_factory=list)
    task_rate_limit_per_minute: int = Field(default=30, ge=1)
    max_task_text_chars: int = Field(default=500, ge=1)
    idempotency_ttl_s: float = Field(default=86400.0, gt=0)
    live_max_fps: float = Field(default=15.0, gt=0)
    webhooks: list[WebhookConfig] = Field(default_factory=list)


DEFAULT_HOME = Path("runs")


class DeploymentConfig(StrictModel):
    name: str = "default"
    # the folder holding this deployment's database and episodes (env HEARTH_HOME)
    home: Path = DEFAULT_HOME
    robots: list[RobotEntry] = Field(default_factory=lambda: [RobotEntry()])
    policy: PolicyWorkerConfig = Field(default_factory=PolicyWorkerConfig)
    system2: System2Config = Field(default_factory=System2Config)
    api: ApiConfig = Field(default_factory=ApiConfig)
    # unless set: <home>/episodes; one LeRobotDataset per robot under it (episodes_root)
    episodes_dir: Path = DEFAULT_HOME / "episodes"
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # agent.orchestrator.OrchestratorConfig fields (e.g. worker_late_s, max_task_s); validated when runtimes are built.
    orchestrator: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _state_under_home(self) -> DeploymentConfig:
        """Place whatever the file leaves unset under `home`, so all commands agree on one location."""
        if "database_url" not in self.api.model_fields_set:
            self.api.database_url = f"sqlite:///{self.home / 'hearth.db'}"
        if "episodes_dir" not in self.model_fields_set:
            self.episodes_dir = self.home / "episodes"
        return self

    def episodes_root(self, robot_id: str) -> Path:
        """The LeRobotDataset one robot records into (the API, `hearth run` and `hearth episodes` all use it)."""
        return self.episodes_dir / robot_id

    @property
    def logs_dir(self) -> Path:
        """Service logs of `hearth demo` and the log file of `hearth run`."""
        return self.home / "logs"


def load_deployment(name_or_path: str = "local", overrides: list[str] | tuple[str, ...] = ()) -> DeploymentConfig:
    """Load configs/deployments/<name>.yaml (or a path) with HEARTH_* env and --set overrides applied."""
    return load_config(DeploymentConfig, resolve_config_path("deployments", name_or_path), overrides)
