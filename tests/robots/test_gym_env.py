"""The gymnasium wrapper: spaces match the robot, the checker accepts it, an expert episode earns progress."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robots.gym_env import RobotEnv
from robots.sim.expert import ScriptedExpert
from robots.sim.kitchen import SimKitchen


@pytest.fixture(scope="module")
def env() -> RobotEnv:
    environment = gym.make(
        "hearth/SimKitchen-v0", task="put the fruit in the bowl", camera_size=32, cameras=("head", "wrist")
    ).unwrapped
    yield environment
    environment.close()


def test_spaces_follow_the_robot_description(env: RobotEnv) -> None:
    desc = env.robot.describe()
    assert env.action_space.shape == (len(desc.actions),)
    assert env.observation_space["state"].shape == (len(desc.state),)
    assert set(env.observation_space["images"].spaces) == {"head", "wrist"}
    obs, info = env.reset(seed=0)
    assert obs["images"]["head"].shape == (32, 32, 3) and obs["images"]["head"].dtype == np.uint8
    assert obs["state"].dtype == np.float32
    assert info["success"] is False and info["progress"] == 0.0


def test_gymnasium_env_checker_accepts_it(env: RobotEnv) -> None:
    check_env(env, skip_render_check=True)


def test_expert_episode_rewards_sum_to_progress_and_terminate(shared_blind_robot: SimKitchen) -> None:
    # state-only robot: the expert needs no images, and rendering every step would dominate the test time
    shared_blind_robot.set_task("put the fruit in the bowl")
    env = RobotEnv(shared_blind_robot, max_episode_steps=600)
    env.reset(seed=1)
    expert = ScriptedExpert(env.robot, seed=1)  # type: ignore[arg-type]
    total, terminated, truncated, info = 0.0, False, False, {}
    for _ in range(600):
        action, _ = expert.act()
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert info["success"] is True
    assert total == pytest.approx(1.0)


def test_bad_action_shape_is_rejected(env: RobotEnv) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
