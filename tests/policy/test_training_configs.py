"""The training configs in configs/training validate, and the sim-small ones match the robot they train for."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy.action_frame import ActionFrame
from policy.training.config import TrainConfig
from robots.sim.kitchen import ACTION_NAMES, STATE_NAMES, YAW_STATE_LOW

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "training").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_training_config_validates(path: Path) -> None:
    config = TrainConfig.from_yaml(path)
    assert config.steps > 0 and config.batch_size > 0


@pytest.mark.parametrize("name", ["sim-small-cpu.yaml", "sim-small-gpu.yaml"])
def test_sim_small_heading_targets_live_in_the_robots_heading_range(name: str) -> None:
    """An absolute heading outside the state's range would put one stand-off heading at two model values."""
    config = TrainConfig.from_yaml(CONFIGS[0].parent / name)
    frame = ActionFrame.from_spec(config.data.action_frame.as_metadata(), ACTION_NAMES, STATE_NAMES)
    assert frame.base_frame == "world" and frame.base_yaw == "absolute"
    assert frame.yaw_low == pytest.approx(YAW_STATE_LOW)
