"""A gymnasium environment around any registered robot, for people who bring their own learners.

Observations are ``{"state": float32[n], "images": {camera: uint8 HxWx3}}``; actions are the robot's own action
vector (bounds from ``describe()``). The reward is the increase in task progress (so an episode's rewards sum to
its final progress), ``terminated`` is task success and ``truncated`` is the step limit. Also registered with
gymnasium as ``hearth/SimKitchen-v0``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robots.base import Robot
from robots.registry import make_robot
from robots.types import Observation


class RobotEnv(gym.Env):
    """gymnasium.Env over a hearth Robot (default: "sim-kitchen")."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        robot: str | Robot = "sim-kitchen",
        max_episode_steps: int = 600,
        render_mode: str | None = None,
        **robot_options: Any,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be > 0, got {max_episode_steps}")
        self.robot = make_robot(robot, **robot_options) if isinstance(robot, str) else robot
        self.description = self.robot.describe()
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        desc = self.description
        low = np.array([a.lower for a in desc.actions], dtype=np.float32)
        high = np.array([a.upper for a in desc.actions], dtype=np.float32)
        self.action_space = spaces.Box(low=low, high=high, dtype=np.float32)
        state_low = np.array([s.lower for s in desc.state], dtype=np.float32)
        state_high = np.array([s.upper for s in desc.state], dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "state": spaces.Box(low=state_low, high=state_high, dtype=np.float32),
                "images": spaces.Dict(
                    {c.name: spaces.Box(0, 255, shape=(c.height, c.width, 3), dtype=np.uint8) for c in desc.cameras}
                ),
            }
        )
        self._steps = 0
        self._progress = 0.0
        self._last: Observation | None = None

    def _convert(self, obs: Observation) -> dict[str, Any]:
        return {"state": obs.state.astype(np.float32), "images": dict(obs.images)}

    def _info(self) -> dict[str, Any]:
        return {
            "task": getattr(self.robot, "task", None),
            "success": self.robot.task_success(),
            "progress": self.robot.task_progress(),
            "steps": self._steps,
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "task" in options:
            self.robot.set_task(str(options["task"]))
        # without a seed, continue the env's own seeded stream (gymnasium's reset contract)
        robot_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self._last = self.robot.reset(robot_seed)
        self._steps = 0
        self._progress = float(self.robot.task_progress() or 0.0)
        return self._convert(self._last), self._info()

    def step(self, action: np.ndarray):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        self.robot.act(a)
        self._steps += 1
        self._last = self.robot.observe()
        progress = float(self.robot.task_progress() or 0.0)
        reward = progress - self._progress
        self._progress = progress
        terminated = bool(self.robot.task_success())
        truncated = self._steps >= self.max_episode_steps and not terminated
        return self._convert(self._last), reward, terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        obs = self._last or self.robot.observe()
        first = self.description.cameras[0].name if self.description.cameras else None
        return obs.images.get(first) if first else None

    def close(self) -> None:
        self.robot.close()


def register_gym_envs() -> None:
    """Register ``hearth/SimKitchen-v0`` with gymnasium (idempotent)."""
    if "hearth/SimKitchen-v0" not in gym.registry:
        gym.register(id="hearth/SimKitchen-v0", entry_point="robots.gym_env:RobotEnv", kwargs={"robot": "sim-kitchen"})


register_gym_envs()
