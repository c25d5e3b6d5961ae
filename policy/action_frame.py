"""Which action dimensions the model predicts relative to the robot's state at the start of the chunk.

Why: a robot interface should take absolute targets (a joint position, an odometry pose) because they are easy to
check and safe to hold, but a small model predicting them has to reproduce absolute world coordinates to a few
centimetres out of a range of metres. Normalized over the ~3 m a mobile base covers, a 0.05 flow-matching error is
8-15 cm, larger than a grasp tolerance. Relative to the state at the chunk's start, the same targets span a few
tens of centimetres, so the same normalized error is a few centimetres. openpi does this for joints
(`DeltaActions` / `AbsoluteActions` in Physical-Intelligence/openpi `src/openpi/transforms.py`, with a mask that
leaves grippers absolute); we add a planar base pose, made relative either in the robot's own frame (``robot``:
"the bowl is ahead and to the left" maps to the same numbers wherever the robot stands) or in the world's axes
(``world``: the offset is ``target - pose`` with no rotation). Why both: a camera-guided line-up reads naturally
in the robot's frame, but driving between rooms from odometry does not; in the robot's frame the network has to
rotate the way to the goal by its own heading (a product of state inputs), while in the world frame the way to
a stand-off depends on position alone and the heading error is a separate output. The sim's stand-offs face the
furniture at a fixed heading, so line-ups see the same world axes every time.

The heading target can stay absolute (``base_yaw: absolute``) while x and y are offsets. Why: where every
subtask ends facing its furniture at a fixed heading, the absolute heading target is a lookup from the subtask
text (one of a few values), whereas the heading offset ``wrap(goal - yaw)`` has to be computed from the measured
heading; a small model that has not learned that subtraction holds still when it arrives turned away. Absolute
headings are expressed in ``[yaw_low, yaw_low + 2 pi)`` (the robot's state convention), so a target never jumps
by 2 pi inside that range.

The frame is a property of the checkpoint (stored in its config metadata), not of the robot: the robot interface
stays absolute, training converts each chunk with `to_model`, and inference converts back with `to_robot`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BASE_FRAMES = ("robot", "world")
BASE_YAW_MODES = ("offset", "absolute")


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles mapped to [-pi, pi)."""
    return (np.asarray(a) + math.pi) % (2.0 * math.pi) - math.pi


def heading_in_range(a: np.ndarray, low: float) -> np.ndarray:
    """Angles mapped to [low, low + 2 pi)."""
    return (np.asarray(a) - low) % (2.0 * math.pi) + low


@dataclass(frozen=True)
class ActionFrame:
    """Action indices made relative to the state (`joint_pairs`) and an optional planar base pose.

    `joint_pairs` are (action index, state index): the model predicts ``action - state``. `base_pose` is the
    (x, y, yaw) action indices with their state indices: the model predicts the target's offset from the pose at
    chunk start, ``R(-yaw) @ (target_xy - state_xy)`` in the base's frame (`base_frame` "robot") or
    ``target_xy - state_xy`` along the world's axes ("world"), and ``wrap(target_yaw - state_yaw)`` in both
    (`base_yaw` "offset") or the target heading itself in ``[yaw_low, yaw_low + 2 pi)`` (`base_yaw` "absolute").
    Every other action index stays absolute (grippers, as in openpi).
    """

    joint_pairs: tuple[tuple[int, int], ...] = ()
    base_pose: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None
    base_frame: str = "robot"
    base_yaw: str = "offset"
    yaw_low: float | None = None

    def __post_init__(self) -> None:
        if self.base_frame not in BASE_FRAMES:
            raise ValueError(f"base_frame must be one of {list(BASE_FRAMES)}, got {self.base_frame!r}")
        if self.base_yaw not in BASE_YAW_MODES:
            raise ValueError(f"base_yaw must be one of {list(BASE_YAW_MODES)}, got {self.base_yaw!r}")
        if self.base_yaw == "absolute" and self.yaw_low is None:
            raise ValueError("an absolute base_yaw needs yaw_low, the low end of the robot's heading range")

    # ---- construction from names (what checkpoints and configs store) ----------------------------------------
    @classmethod
    def from_names(
        cls,
        relative: Sequence[str],
        base_pose: Sequence[str] | None,
        action_names: Sequence[str],
        state_names: Sequence[str],
        base_frame: str = "robot",
        base_yaw: str = "offset",
        yaw_low: float | None = None,
    ) -> ActionFrame:
        """Resolve names to indices; each relative action must have a state of the same name."""
        action_index = {name: i for i, name in enumerate(action_names)}
        state_index = {name: i for i, name in enumerate(state_names)}

        def pair(name: str) -> tuple[int, int]:
            if name not in action_index:
                raise ValueError(f"action frame names {name!r}, which is not an action ({list(action_names)})")
            if name not in state_index:
                raise ValueError(f"action frame needs a state named {name!r} to be relative to ({list(state_names)})")
            return action_index[name], state_index[name]

        base = None
        if base_pose:
            if len(base_pose) != 3:
                raise ValueError(f"base_pose must name (x, y, yaw), got {list(base_pose)}")
            base = (pair(base_pose[0]), pair(base_pose[1]), pair(base_pose[2]))
        overlap = set(relative) & set(base_pose or ())
        if overlap:
            raise ValueError(f"{sorted(overlap)} are both joint-relative and part of the base pose")
        return cls(
            joint_pairs=tuple(pair(name) for name in relative),
            base_pose=base,
            base_frame=base_frame,
            base_yaw=base_yaw,
            yaw_low=None if yaw_low is None else float(yaw_low),
        )

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any] | None, action_names: Sequence[str], state_names: Sequence[str]
    ) -> ActionFrame | None:
        """The frame a spec ``{"relative": [...], "base_pose": [...], "base_frame": ..., "base_yaw": ...,
        "yaw_low": ...}`` names, or None (absolute) for no spec. Specs written before `base_frame` existed mean
        "robot"; before `base_yaw`, "offset"."""
        if not spec:
            return None
        return cls.from_names(
            spec.get("relative", []),
            spec.get("base_pose"),
            action_names,
            state_names,
            spec.get("base_frame") or "robot",
            spec.get("base_yaw") or "offset",
            spec.get("yaw_low"),
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ActionFrame | None:
        """The frame a checkpoint or dataset declares in its metadata (``action_frame``), or None."""
        return cls.from_spec(metadata.get("action_frame"), metadata["action_names"], metadata["state_names"])

    # ---- conversion -------------------------------------------------------------------------------------------
    def to_model(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Robot-unit chunk [..., H, A] and the state at its start [..., S] -> the model's frame (a new array)."""
        actions = np.asarray(actions, np.float64)
        state = np.asarray(state, np.float64)[..., None, :]  # broadcast over the horizon
        out = actions.copy()
        for a, s in self.joint_pairs:
            out[..., a] = actions[..., a] - state[..., s]
        if self.base_pose is not None:
            (ax, sx), (ay, sy), (ayaw, syaw) = self.base_pose
            yaw = state[..., syaw]
            dx, dy = actions[..., ax] - state[..., sx], actions[..., ay] - state[..., sy]
            c, s_ = self._rotation(yaw)
            out[..., ax] = c * dx + s_ * dy
            out[..., ay] = -s_ * dx + c * dy
            out[..., ayaw] = self._heading_to_model(actions[..., ayaw], yaw)
        return out.astype(np.float32)

    def to_robot(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Inverse of `to_model`: the model's chunk [..., H, A] back to robot units given the start state."""
        actions = np.asarray(actions, np.float64)
        state = np.asarray(state, np.float64)[..., None, :]
        out = actions.copy()
        for a, s in self.joint_pairs:
            out[..., a] = actions[..., a] + state[..., s]
        if self.base_pose is not None:
            (ax, sx), (ay, sy), (ayaw, syaw) = self.base_pose
            yaw = state[..., syaw]
            c, s_ = self._rotation(yaw)
            out[..., ax] = state[..., sx] + c * actions[..., ax] - s_ * actions[..., ay]
            out[..., ay] = state[..., sy] + s_ * actions[..., ax] + c * actions[..., ay]
            out[..., ayaw] = self._heading_to_robot(actions[..., ayaw], yaw)
        return out.astype(np.float32)

    def _heading_to_model(self, target: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        if self.base_yaw == "absolute":
            return heading_in_range(target, self.yaw_low)
        return wrap_angle(target - yaw)

    def _heading_to_robot(self, predicted: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        if self.base_yaw == "absolute":  # a target in the state's range: the pose controller turns the short way
            return heading_in_range(predicted, self.yaw_low)
        return yaw + predicted

    def _rotation(self, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin) of the angle from the world's axes to the offset's axes: the heading, or 0 in "world"."""
        if self.base_frame == "world":
            return np.ones_like(yaw), np.zeros_like(yaw)
        return np.cos(yaw), np.sin(yaw)


def apply_to_model(frame: ActionFrame | None, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
    """`frame.to_model`, or the actions unchanged (as float32) when the checkpoint predicts absolute actions."""
    return np.asarray(actions, np.float32) if frame is None else frame.to_model(actions, state)


def apply_to_robot(frame: ActionFrame | None, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
    return np.asarray(actions, np.float32) if frame is None else frame.to_robot(actions, state)
