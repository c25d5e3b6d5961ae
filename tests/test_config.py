"""The config loader: file < env < CLI precedence, and errors that name the file, key and reason."""

from pathlib import Path

import pytest

from agent.config import ConfigError, StrictModel, load_config, resolve_config_path


class Api(StrictModel):
    host: str = "127.0.0.1"
    port: int = 8000


class Deployment(StrictModel):
    name: str = "default"
    robots: list[str] = []
    api: Api = Api()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    return path


def test_file_env_and_cli_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, "name: home\nrobots: [sim-kitchen]\napi:\n  port: 9000\n")
    cfg = load_config(Deployment, path, environ={})
    assert (cfg.name, cfg.robots, cfg.api.port) == ("home", ["sim-kitchen"], 9000)
    cfg = load_config(
        Deployment, path, environ={"HEARTH_API__PORT": "9100", "HEARTH_UNRELATED": "x", "HEARTH_NAME": "flat"}
    )
    assert (cfg.api.port, cfg.name) == (9100, "flat")
    cfg = load_config(
        Deployment, path, overrides=["api.port=9200", "api.host=0.0.0.0"], environ={"HEARTH_API__PORT": "9100"}
    )
    assert (cfg.api.port, cfg.api.host) == (9200, "0.0.0.0")


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  prot: 9000\n")
    with pytest.raises(ConfigError) as info:
        load_config(Deployment, path, environ={})
    assert str(info.value) == f"{path}: key 'api.prot': unknown key"


def test_wrong_type_names_key_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  port: many\n")
    with pytest.raises(ConfigError, match=r"deploy.yaml: key 'api.port': Input should be a valid integer"):
        load_config(Deployment, path, environ={})


def test_bad_env_value_and_bad_override_fail(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'api\.port'"):
        load_config(Deployment, None, environ={"HEARTH_API__PORT": "[1, 2]"})
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(Deployment, None, overrides=["api.port"], environ={})


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Deployment, write(tmp_path, "api: [unclosed\n"), environ={})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Deployment, write(tmp_path, "- a\n- b\n"), environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(Deployment, tmp_path / "nope.yaml", environ={})


def test_resolve_config_path_unknown_name_lists_known() -> None:
    with pytest.raises(ConfigError, match="unknown robot config 'no-such-robot'"):
        resolve_config_path("robots", "no-such-robot")


def test_the_local_deployment_shows_people_a_sharper_view_than_the_policy_gets():
    """`make demo` runs the local deployment: its live view and recordings use the operator cameras."""
    from agent.settings import load_deployment
    from robots.registry import make_robot

    entry = load_deployment("local").robots[0]
    robot = make_robot(entry.kind, **entry.options, render=False)
    try:
        cameras = robot.describe().cameras
    finally:
        robot.close()
    assert all(c.height == 96 and (c.operator_height or 0) >= 256 for c in cameras)
