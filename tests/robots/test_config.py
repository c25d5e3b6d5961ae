"""Robot config files: the bundled ones validate and build a safe robot; bad files are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from robots.config import CONFIG_DIR, RobotConfigError, build_robot, load_robot_config
from robots.safety import SafeRobot


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_configs_validate(path: Path) -> None:
    config = load_robot_config(path)
    assert config.kind == "sim-kitchen"
    assert config.safety.enabled


def test_bundled_config_builds_a_safe_robot() -> None:
    config = load_robot_config("sim-kitchen")
    robot = build_robot(config, render=False)
    try:
        assert isinstance(robot, SafeRobot)
        desc = robot.describe()
        assert desc.name == "sim-kitchen" and desc.camera_names == ["head", "wrist"]
        assert robot.limits.workspace is not None
    finally:
        robot.close()


def test_bad_configs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RobotConfigError, match="known"):
        load_robot_config("no-such-robot")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: sim-kitchen\nsafety:\n  watchdog_timeout_s: -1\n")
    with pytest.raises(RobotConfigError, match="watchdog_timeout_s"):
        load_robot_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("kind: sim-kitchen\noptoins: {}\n")
    with pytest.raises(RobotConfigError, match="optoins"):
        load_robot_config(typo)
