"""The interface every robot implements, simulated or real.

The orchestrator, the recorder and the safety layer only ever talk to this class, so a new robot is one subclass
plus one registry entry. ``describe()`` is the single source of truth for camera names, state/action names,
units and limits: nobody else hard-codes dimensions.
"""

from __future__ import annotations

import abc

import numpy as np

from robots.types import Observation, RobotDescription


class Robot(abc.ABC):
    """A robot driven one control tick at a time; the caller paces wall-clock time."""

    @abc.abstractmethod
    def describe(self) -> RobotDescription:
        """Cameras, state and action specs (names, units, limits), control rate and known tasks."""

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> Observation:
        """Start a new episode (a sim re-randomizes from ``seed``) and return the first observation."""

    @abc.abstractmethod
    def observe(self) -> Observation:
        """Current images (uint8 HxWx3 keyed by camera name) and state."""

    @abc.abstractmethod
    def act(self, action: np.ndarray) -> None:
        """Apply ONE control tick of ``action`` (shape = len(describe().actions), robot units)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release renderers, connections and hardware."""

    # Optional: simulated robots know the ground truth; real robots return None.
    def task_success(self) -> bool | None:
        """Whether the current task is achieved, read from simulator state (None: unknown)."""
        return None

    def task_progress(self) -> float | None:
        """Fraction of the current task's subtasks achieved, 0..1 (None: unknown)."""
        return None

    def set_task(self, task: str) -> None:
        """Choose the household task for the next reset; robots without a task suite accept any text."""
        return None

    def current_state(self) -> np.ndarray:
        """The state vector alone; robots that can read it without grabbing camera frames should override this."""
        return self.observe().state

    def hold_action(self) -> np.ndarray | None:
        """An action that keeps the robot where it is now (None when the robot has no such notion)."""
        return None

    def __enter__(self) -> Robot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
