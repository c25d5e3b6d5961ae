"""Robot configs (configs/robots/<name>.yaml): which registered robot, its options, and its safety limits.

Kept inside robots/ (robots imports nothing from agent), so the loader is small: strict pydantic models, YAML in.
A bare name means the bundled file configs/robots/<name>.yaml; anything ending in .yaml is a path.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robots.base import Robot
from robots.registry import make_robot
from robots.safety import SafeRobot, SafetyLimits
from robots.types import SafetyEvent

# The bundled robot configs, from the package `hearth_configs` (the repository's configs/, see pyproject.toml).
CONFIG_DIR = Path(str(files("hearth_configs") / "robots"))


class RobotConfigError(ValueError):
    """A robot config file is missing or invalid; the message names the file and the field."""


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    watchdog_timeout_s: float = Field(0.5, gt=0)
    limits: SafetyLimits = Field(default_factory=SafetyLimits)


class RobotConfig(BaseModel):
    """One robot: its registry kind, constructor options and the safety layer around it."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    description: str = ""
    options: dict[str, object] = Field(default_factory=dict)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)


def load_robot_config(name_or_path: str | Path) -> RobotConfig:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise RobotConfigError(f"unknown robot config {str(name_or_path)!r}; known: {known}")
    if not path.exists():
        raise RobotConfigError(f"{path}: robot config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return RobotConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise RobotConfigError(f"{path}: invalid robot config: {exc}") from exc


def build_robot(
    config: RobotConfig, on_event: Callable[[SafetyEvent], None] | None = None, **overrides: object
) -> Robot:
    """Make the configured robot (options overridden by ``overrides``), wrapped in SafeRobot unless disabled."""
    robot = make_robot(config.kind, **{**config.options, **overrides})
    if not config.safety.enabled:
        return robot
    return SafeRobot(robot, config.safety.limits, config.safety.watchdog_timeout_s, on_event)
