"""SafeRobot: the safety layer that sits below the policy and wraps any Robot.

Every action goes through, in order: non-finite rejection (NaN/inf never reach the robot; it holds instead),
position clamping to the joint/command limits, per-tick velocity and acceleration limits on position targets,
a base speed/acceleration limit and a workspace box for the mobile base. A software e-stop latches until
``reset_estop()`` and makes every ``act()`` hold still; a watchdog thread, armed by the first action, commands a
stop when no action (or ``hold()``) arrives within ``watchdog_timeout_s``. Each intervention is reported as a
``SafetyEvent`` through ``on_event`` because operators must see when the layer changed what the policy asked.

Which action dimensions are position targets and which command the base is read from ``describe()``: units
"rad"/"m" are position targets; a base is commanded either by velocities (names in
``SafetyLimits.base_velocity_names``: speed and acceleration limits) or by odometry pose targets (names in
``SafetyLimits.base_pose_names`` among the actions: the target may lead the measured pose by at most
``max_base_lead`` m / ``max_base_yaw_lead`` rad, since the robot's pose controller turns lead into speed, and
must lie inside the workspace box).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, Field, model_validator

from robots.base import Robot
from robots.types import Observation, RobotDescription, SafetyEvent

logger = logging.getLogger(__name__)

POSITION_UNITS = ("rad", "m")


class WorkspaceBox(BaseModel):
    """Where the mobile base may drive (world frame, metres)."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    @model_validator(mode="after")
    def _ordered(self) -> WorkspaceBox:
        if self.x_min >= self.x_max or self.y_min >= self.y_max:
            raise ValueError(f"workspace box is empty: {self}")
        return self


class SafetyLimits(BaseModel):
    """Limits the safety layer enforces; anything not given comes from the robot's own description."""

    position_lower: dict[str, float] = Field(
        default_factory=dict, description="per action name; tighter than describe()"
    )
    position_upper: dict[str, float] = Field(default_factory=dict)
    max_joint_velocity: float = Field(2.5, gt=0, description="rad/s (or m/s) for position-target dimensions")
    max_joint_acceleration: float = Field(40.0, gt=0, description="rad/s^2 (or m/s^2) for position targets")
    joint_velocity: dict[str, float] = Field(default_factory=dict, description="per-name velocity overrides")
    max_base_speed: float = Field(0.9, gt=0, description="m/s, norm of the planar base velocity")
    max_base_yaw_rate: float = Field(1.5, gt=0, description="rad/s")
    max_base_acceleration: float = Field(2.5, gt=0, description="m/s^2 per planar axis")
    max_base_yaw_acceleration: float = Field(5.0, gt=0, description="rad/s^2")
    max_base_lead: float = Field(0.6, gt=0, description="m: pose-target base, distance of target from pose")
    max_base_yaw_lead: float = Field(0.8, gt=0, description="rad: pose-target base, heading lead")
    workspace: WorkspaceBox | None = None
    base_velocity_names: tuple[str, str, str] = ("base_vx", "base_vy", "base_wz")
    base_pose_names: tuple[str, str, str] = ("base_x", "base_y", "base_yaw")


class SafeRobot(Robot):
    """Wraps ``robot``; thread-safe (the watchdog thread and the control thread share the inner robot)."""

    def __init__(
        self,
        robot: Robot,
        limits: SafetyLimits | None = None,
        watchdog_timeout_s: float = 0.5,
        on_event: Callable[[SafetyEvent], None] | None = None,
    ) -> None:
        if watchdog_timeout_s <= 0:
            raise ValueError(f"watchdog_timeout_s must be > 0, got {watchdog_timeout_s}")
        self.robot = robot
        self.limits = limits or SafetyLimits()
        self.watchdog_timeout_s = float(watchdog_timeout_s)
        self.on_event = on_event
        self.events: collections.deque[SafetyEvent] = collections.deque(maxlen=256)
        self._desc: RobotDescription = robot.describe()
        self._dt = 1.0 / self._desc.control_hz
        self._lock = threading.RLock()
        self._compile_limits()
        self._estopped = False
        self._estop_reason = ""
        self._last_applied: np.ndarray | None = None
        self._last_delta = np.zeros(self._n)
        self._hold: np.ndarray | None = None  # fixed "stay here" action while holding
        self._last_command = 0.0
        self._armed = False
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="safety-watchdog", daemon=True)
        self._watchdog.start()

    # ------------------------------------------------------------------ setup
    def _compile_limits(self) -> None:
        desc, lim = self._desc, self.limits
        names = desc.action_names
        self._n = len(names)
        unknown = (set(lim.position_lower) | set(lim.position_upper) | set(lim.joint_velocity)) - set(names)
        if unknown:
            raise ValueError(f"safety limits name unknown action(s) {sorted(unknown)}; actions are {names}")
        self._lower = np.array([max(a.lower, lim.position_lower.get(a.name, -np.inf)) for a in desc.actions])
        self._upper = np.array([min(a.upper, lim.position_upper.get(a.name, np.inf)) for a in desc.actions])
        if np.any(self._lower > self._upper):
            raise ValueError("safety limits leave an empty range for some action")
        self._is_position = np.array([a.unit.split(" ")[0] in POSITION_UNITS for a in desc.actions])
        pose_targets = [names.index(n) if n in names else -1 for n in lim.base_pose_names]
        self._base_target_idx = pose_targets if all(i >= 0 for i in pose_targets) else None
        if self._base_target_idx is not None:  # limited as a whole by _limit_base_target, not per dimension
            self._is_position[self._base_target_idx] = False
        self._vel = np.array([lim.joint_velocity.get(a.name, lim.max_joint_velocity) for a in desc.actions])
        base = [names.index(n) if n in names else -1 for n in lim.base_velocity_names]
        self._base_idx = base if all(i >= 0 for i in base) else None
        state_names = desc.state_names
        pose = [state_names.index(n) if n in state_names else -1 for n in lim.base_pose_names]
        self._pose_idx = pose if all(i >= 0 for i in pose) else None
        # the state index of each position-target action, to start the velocity limit from the measured pose
        self._state_of_action = [state_names.index(n) if n in state_names else -1 for n in names]

    # ------------------------------------------------------------------ events
    def _emit(self, kind: str, message: str, **details: object) -> None:
        event = SafetyEvent(kind=kind, message=message, details=details)
        self.events.append(event)
        # limit clamps can fire every tick for an untrained policy: keep them out of the default log (they still
        # reach on_event); stops, latches and rejections are always worth a warning
        logger.log(
            logging.DEBUG if kind.startswith(("limit_", "clamp")) else logging.WARNING, "safety %s: %s", kind, message
        )
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken listener must never stop the safety layer
                logger.exception("safety on_event callback failed")

    # ------------------------------------------------------------------ Robot interface
    def describe(self) -> RobotDescription:
        return self._desc

    def reset(self, seed: int | None = None) -> Observation:
        with self._lock:
            obs = self.robot.reset(seed)
            self._last_applied = None
            self._last_delta = np.zeros(self._n)
            self._hold = None
            self._armed = False  # re-armed by the first action of the new episode
            return obs

    def observe(self) -> Observation:
        with self._lock:
            return self.robot.observe()

    def current_state(self) -> np.ndarray:
        with self._lock:
            return self.robot.current_state()

    def task_success(self) -> bool | None:
        return self.robot.task_success()

    def task_progress(self) -> float | None:
        return self.robot.task_progress()

    def set_task(self, task: str) -> None:
        self.robot.set_task(task)

    def hold_action(self) -> np.ndarray | None:
        return self.robot.hold_action()

    def close(self) -> None:
        self._stop.set()
        if self._watchdog.is_alive() and threading.current_thread() is not self._watchdog:
            self._watchdog.join(timeout=2.0)
        with self._lock:
            self.robot.close()

    def act(self, action: np.ndarray) -> None:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self._n,):
            raise ValueError(
                f"action must have shape ({self._n},) ({', '.join(self._desc.action_names)}), got {a.shape}"
            )
        with self._lock:
            self._feed_watchdog()
            if self._estopped:
                self._apply_hold()
                return
            if not np.all(np.isfinite(a)):
                bad = [n for n, v in zip(self._desc.action_names, a, strict=True) if not math.isfinite(v)]
                self._emit("nonfinite_action", f"rejected an action with NaN/inf in {bad}; holding still", names=bad)
                self._apply_hold()
                return
            safe = self._limit(a)
            self._hold = None
            self._apply(safe)

    # ------------------------------------------------------------------ e-stop, hold, watchdog
    @property
    def estopped(self) -> bool:
        return self._estopped

    def estop(self, reason: str = "operator") -> None:
        """Latch the e-stop: the robot holds still on every tick until ``reset_estop()``."""
        with self._lock:
            already = self._estopped
            self._estopped = True
            self._estop_reason = reason
            self._hold = None
            self._apply_hold()
        if not already:
            self._emit("estop", f"e-stop latched: {reason}", reason=reason)

    def reset_estop(self) -> None:
        with self._lock:
            was = self._estopped
            self._estopped = False
            self._hold = None
        if was:
            self._emit("estop_reset", "e-stop released", reason=self._estop_reason)

    def hold(self) -> None:
        """Command "stay where you are" for one tick (the caller has no action ready); feeds the watchdog."""
        with self._lock:
            self._feed_watchdog()
            self._apply_hold()

    def stand_down(self) -> None:
        """The controller stops commanding on purpose (task ended, loop stopping): hold still and disarm the
        watchdog, so a deliberate stop is not reported as a lost controller. The next act() or hold() re-arms it."""
        with self._lock:
            self._apply_hold()
            self._armed = False

    def _feed_watchdog(self) -> None:
        self._last_command = time.monotonic()
        self._armed = True

    def _watch(self) -> None:
        poll = min(0.05, self.watchdog_timeout_s / 4)
        while not self._stop.wait(poll):
            with self._lock:
                if not self._armed or time.monotonic() - self._last_command < self.watchdog_timeout_s:
                    continue
                self._armed = False  # fire once; the next action re-arms
                late = time.monotonic() - self._last_command
                try:
                    self._apply_hold()
                except Exception:
                    logger.exception("watchdog could not command a stop")
            self._emit(
                "watchdog",
                f"no action for {late:.2f} s (timeout {self.watchdog_timeout_s:.2f} s); robot stopped",
                seconds_since_last_action=round(late, 3),
            )

    def _hold_target(self) -> np.ndarray:
        """A fixed "stay here" action: the robot's own, else the last applied action with the base stopped."""
        if self._hold is None:
            hold = self.robot.hold_action()
            if hold is None:
                hold = self._last_applied.copy() if self._last_applied is not None else None
            if hold is None:
                state = self.robot.current_state()
                hold = np.array([state[i] if i >= 0 else 0.0 for i in self._state_of_action])
            hold = np.asarray(hold, dtype=np.float64).copy()
            if self._base_idx is not None:
                hold[self._base_idx] = 0.0
            self._hold = np.clip(hold, self._lower, self._upper)
        return self._hold

    def _apply_hold(self) -> None:
        self._apply(self._hold_target())

    def _apply(self, action: np.ndarray) -> None:
        if self._last_applied is not None:
            self._last_delta = action - self._last_applied
        self._last_applied = action.copy()
        self.robot.act(action)

    # ------------------------------------------------------------------ limits
    def _reference(self) -> np.ndarray:
        """What the position targets are compared against: the last applied action, else the measured state."""
        if self._last_applied is not None:
            return self._last_applied
        state = self.robot.current_state()
        return np.array([state[i] if i >= 0 else np.nan for i in self._state_of_action])

    def _limit(self, a: np.ndarray) -> np.ndarray:
        names = self._desc.action_names
        out = a.copy()
        # 1. position / command range
        clamped = np.clip(out, self._lower, self._upper)
        hit = np.flatnonzero(clamped != out)
        if hit.size:
            self._emit(
                "clamp_position",
                f"clamped {[names[i] for i in hit]} to their limits",
                names=[names[i] for i in hit],
                requested=[float(out[i]) for i in hit],
                applied=[float(clamped[i]) for i in hit],
            )
        out = clamped
        # 2. velocity and acceleration of position targets
        ref = self._reference()
        pos = self._is_position & np.isfinite(ref)
        if np.any(pos):
            max_step = self._vel * self._dt
            step = out - ref
            limited = np.where(pos, np.clip(step, -max_step, max_step), step)
            hit = np.flatnonzero(pos & (limited != step))
            if hit.size:
                self._emit(
                    "limit_velocity",
                    f"slowed {[names[i] for i in hit]} to their velocity limit",
                    names=[names[i] for i in hit],
                    requested_step=[float(step[i]) for i in hit],
                    applied_step=[float(limited[i]) for i in hit],
                )
            max_change = self.limits.max_joint_acceleration * self._dt * self._dt
            prev = self._last_delta if self._last_applied is not None else np.zeros(self._n)
            smooth = np.where(pos, np.clip(limited, prev - max_change, prev + max_change), limited)
            hit = np.flatnonzero(pos & (smooth != limited))
            if hit.size:
                self._emit(
                    "limit_acceleration",
                    f"smoothed {[names[i] for i in hit]} to their acceleration limit",
                    names=[names[i] for i in hit],
                )
            out = np.where(pos, np.clip(ref + smooth, self._lower, self._upper), out)
        # 3. the mobile base
        if self._base_idx is not None:
            out = self._limit_base(out)
        if self._base_target_idx is not None and self._pose_idx is not None:
            out = self._limit_base_target(out)
        return out

    def _limit_base_target(self, out: np.ndarray) -> np.ndarray:
        """Pose-target base: keep the target near the measured pose and inside the workspace."""
        lim = self.limits
        ix, iy, iw = self._base_target_idx  # type: ignore[misc]
        state = self.robot.current_state()
        x, y, yaw = (float(state[i]) for i in self._pose_idx)  # type: ignore[union-attr]
        tx, ty, tyaw = float(out[ix]), float(out[iy]), float(out[iw])
        lead = math.hypot(tx - x, ty - y)
        yaw_lead = (tyaw - yaw + math.pi) % (2 * math.pi) - math.pi
        if lead > lim.max_base_lead or abs(yaw_lead) > lim.max_base_yaw_lead:
            scale = min(1.0, lim.max_base_lead / lead)
            self._emit(
                "limit_base_lead",
                f"base target {lead:.2f} m / {yaw_lead:.2f} rad from the base limited to "
                f"{lim.max_base_lead:.2f} m / {lim.max_base_yaw_lead:.2f} rad",
                requested=[tx, ty, tyaw],
            )
            tx, ty = x + (tx - x) * scale, y + (ty - y) * scale
            tyaw = yaw + float(np.clip(yaw_lead, -lim.max_base_yaw_lead, lim.max_base_yaw_lead))
        box = lim.workspace
        if box is not None:
            cx, cy = min(max(tx, box.x_min), box.x_max), min(max(ty, box.y_min), box.y_max)
            if (cx, cy) != (tx, ty):
                self._emit(
                    "workspace",
                    f"base target ({tx:.2f}, {ty:.2f}) moved inside the workspace to ({cx:.2f}, {cy:.2f})",
                    position=[x, y],
                    requested=[tx, ty],
                )
                tx, ty = cx, cy
        out[[ix, iy, iw]] = (tx, ty, tyaw)
        return out

    def _limit_base(self, out: np.ndarray) -> np.ndarray:
        lim = self.limits
        ix, iy, iw = self._base_idx  # type: ignore[misc]
        vx, vy, wz = float(out[ix]), float(out[iy]), float(out[iw])
        speed = math.hypot(vx, vy)
        if speed > lim.max_base_speed or abs(wz) > lim.max_base_yaw_rate:
            scale = min(1.0, lim.max_base_speed / speed) if speed > 0 else 1.0
            new_w = float(np.clip(wz, -lim.max_base_yaw_rate, lim.max_base_yaw_rate))
            self._emit(
                "limit_base_speed",
                f"base command ({speed:.2f} m/s, {wz:.2f} rad/s) limited to "
                f"({lim.max_base_speed:.2f} m/s, {lim.max_base_yaw_rate:.2f} rad/s)",
                requested=[vx, vy, wz],
            )
            vx, vy, wz = vx * scale, vy * scale, new_w
        prev = self._last_applied[[ix, iy, iw]] if self._last_applied is not None else np.zeros(3)
        max_change = np.array([lim.max_base_acceleration] * 2 + [lim.max_base_yaw_acceleration]) * self._dt
        wanted = np.array([vx, vy, wz])
        limited = np.clip(wanted, prev - max_change, prev + max_change)
        if not np.allclose(limited, wanted):
            self._emit(
                "limit_base_acceleration",
                "base command changed faster than its acceleration limit",
                requested=wanted.tolist(),
                applied=limited.tolist(),
            )
        vx, vy, wz = (float(v) for v in limited)
        if lim.workspace is not None and self._pose_idx is not None:
            vx, vy = self._keep_in_workspace(vx, vy, lim.workspace)
        out[[ix, iy, iw]] = (vx, vy, wz)
        return out

    def _keep_in_workspace(self, vx: float, vy: float, box: WorkspaceBox) -> tuple[float, float]:
        """Drop the world-frame velocity components that would carry the base out of the box."""
        state = self.robot.current_state()
        x, y, yaw = (float(state[i]) for i in self._pose_idx)  # type: ignore[union-attr]
        c, s = math.cos(yaw), math.sin(yaw)
        wx, wy = c * vx - s * vy, s * vx + c * vy
        nx, ny = x + wx * self._dt, y + wy * self._dt
        blocked = []
        if (nx < box.x_min and wx < 0) or (nx > box.x_max and wx > 0):
            wx = 0.0
            blocked.append("x")
        if (ny < box.y_min and wy < 0) or (ny > box.y_max and wy > 0):
            wy = 0.0
            blocked.append("y")
        if not blocked:
            return vx, vy
        self._emit(
            "workspace",
            f"base stopped at the workspace edge along {blocked} at ({x:.2f}, {y:.2f})",
            position=[x, y],
            axes=blocked,
        )
        return c * wx + s * wy, -s * wx + c * wy
