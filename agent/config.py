"""Configuration: YAML files under configs/, validated by pydantic, overridable by env and CLI.

Precedence (lowest to highest): model defaults < YAML file < `HEARTH_<SECTION>__<KEY>` environment
variables < `--set section.key=value` CLI overrides. Every failure is a `ConfigError` naming the file,
the dotted key and the reason, so a bad deployment fails at start instead of mid-task.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

# The bundled configs: the repository's configs/, installed as the package `hearth_configs` (pyproject.toml), so a
# wheel install finds them too. Wheels install as directories, so the resource is a real path on disk.
CONFIG_ROOT = Path(str(files("hearth_configs")))
ENV_PREFIX = "HEARTH_"

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who wrote the file."""


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid")


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ConfigError(f"override {dotted!r}: empty key")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _parse_scalar(text: str) -> Any:
    """Parse an override value the way YAML would ('3' -> 3, 'true' -> True, '[1,2]' -> list)."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def env_overrides(
    environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX, top_level_keys: Iterable[str] = ()
) -> dict[str, Any]:
    """`HEARTH_API__PORT=9000` -> {"api": {"port": 9000}}.

    A variable without `__` (`HEARTH_EPISODES_DIR`) is a config key only when it names one of `top_level_keys`;
    other `HEARTH_*` variables belong to other tools (e.g. an API key for one process) and are left alone.
    """
    environ = os.environ if environ is None else environ
    top_level = set(top_level_keys)
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(prefix):
            continue
        dotted = key[len(prefix) :].lower().replace("__", ".")
        if "__" not in key[len(prefix) :] and dotted not in top_level:
            continue
        _set_dotted(tree, dotted, _parse_scalar(value))
    return tree


def cli_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`["api.port=9000", "robots=[sim-kitchen]"]` -> nested dict."""
    tree: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        _set_dotted(tree, key.strip(), _parse_scalar(value.strip()))
    return tree


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def format_validation_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        reason = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{source}: key '{key}': {reason}")
    return "\n".join(lines)


def load_config(
    model: type[ModelT],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    env_prefix: str = ENV_PREFIX,
) -> ModelT:
    """Load and validate one config, applying env and CLI overrides on top of the file."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        data = read_yaml(Path(path))
        source = str(path)
    data = deep_merge(data, env_overrides(environ, env_prefix, model.model_fields))
    data = deep_merge(data, cli_overrides(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def resolve_config_path(kind: str, name_or_path: str) -> Path:
    """A bare name like `sim-kitchen` means configs/<kind>/<name>.yaml; anything else is a path."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        if not candidate.exists():
            raise ConfigError(f"{candidate}: config file not found")
        return candidate
    bundled = CONFIG_ROOT / kind / f"{name_or_path}.yaml"
    if not bundled.exists():
        known = sorted(p.stem for p in (CONFIG_ROOT / kind).glob("*.yaml"))
        raise ConfigError(
            f"unknown {kind[:-1] if kind.endswith('s') else kind} config {name_or_path!r}; known: {known}"
        )
    return bundled


class LoggingConfig(StrictModel):
    level: str = "INFO"
    format: Literal["keyvalue", "json"] = "keyvalue"
