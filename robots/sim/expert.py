"""ScriptedExpert: solves every sim-kitchen task from simulator state and labels each tick with its subtask.

The script is a Python generator per task that reads the simulator between ticks, so it is closed-loop:
- "go to the X": drive (through the doorway if needed) to X's fixed stand-off (``standoff_pose``), arm tucked;
- "pick up the Y": line the base up so Y is ``REACH`` straight ahead (the only part that needs to *see* Y)
  while the arm unfolds to hover over that point, then a fixed top-down grasp, lift and tuck;
- "place the Y on Z": line up with the place spot (a fixed spot per object and surface, the sink's centre, or
  the bowl, which must be seen), lower, release, tuck.
The base is commanded by pose targets: while driving, a waypoint a short lead ahead of the base; when lining up,
the final pose itself. Perturbations (``noise`` > 0) push the base or the arm off course, including during the
final approach, line-up and pre-grasp hover (never while the fingers close or open), and the next ticks steer
back, which is what demonstrations need to teach recovery. A failed grasp is retried after lining up again. Labels follow the paper's style ("go to the table", "pick up the can",
"place the can in the sink"); after the last subtask the label is "done" and the action holds still.

With noise the executed action is ``clean + perturbation``; ``last_clean_action`` keeps the unperturbed one for
collectors who want to record the corrective label instead (DART-style).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np

from robots.sim import scene
from robots.sim.kitchen import (
    ARM_LIMITS,
    BASE_GAIN,
    FACING,
    HOME_ARM,
    REACH,
    SimKitchen,
    in_work_zone,
    reach_pose,
    standoff_pose,
    wrap_angle,
)
from robots.sim.tasks import FURNITURE_OF, Move

logger = logging.getLogger(__name__)

Step = tuple[np.ndarray, str]

TORSO_FOR = {"table": 0.12, "counter": 0.28, "shelf": 0.2}
BASE_SPEED = 0.7  # m/s cruise
BASE_ACCEL = 1.6  # m/s^2
YAW_ACCEL = 3.0  # rad/s^2
ARM_FAST = 0.45  # m/s free-space hand speed
ARM_SLOW = 0.2  # m/s near objects
JOINT_SPEED = 1.6  # rad/s in joint-space moves
APPROACH_BACKOFF = 0.35  # m: turn in the open before the final straight approach
HOVER = 0.12  # m: the hand hovers this far above the grasp/release point while the base lines up
ALIGNED_XY, ALIGNED_YAW = 0.006, 0.012  # m, rad: the base is lined up (grasp tolerance is ~2-3 cm)
# Where a carried object goes on a surface, along its edge: one fixed spot per object so that two objects put on
# the same surface (clear the table) never land on each other. The table's spot avoids the bowl (seen).
PLACE_ALONG = {"counter": {"can": 0.02, "bottle": -0.2}, "shelf": {}, "table": {}}
DEFAULT_ALONG = {"counter": -0.1, "shelf": 0.35, "table": 0.25}
LO = np.array([lo for lo, _ in ARM_LIMITS]) + 0.02
HI = np.array([hi for _, hi in ARM_LIMITS]) - 0.02


def furniture_near(p: np.ndarray) -> str:
    """Which piece of furniture an object at ``p`` is on (for re-grasping after a failed place)."""
    if p[0] < sum(scene.DIVIDER_X) / 2:
        return "table"
    if p[1] > scene.SHELF.y0 - 0.2:
        return "shelf"
    return "counter"


class ScriptedExpert:
    """Closed-loop scripted solver for the robot's current task (call after ``robot.reset``)."""

    def __init__(self, robot: SimKitchen, noise: float = 0.0, seed: int = 0) -> None:
        import mujoco

        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        # accept wrappers (SafeRobot, recorders) that keep the simulator in `.robot`
        while not isinstance(robot, SimKitchen) and hasattr(robot, "robot"):
            robot = robot.robot
        if not isinstance(robot, SimKitchen):
            raise TypeError(f"ScriptedExpert needs a SimKitchen (or a wrapper of one), got {type(robot).__name__}")
        self._mj = mujoco
        self.robot = robot
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.dt = 1.0 / robot.control_hz
        self._scratch = mujoco.MjData(robot.model)
        self._jacp = np.zeros((3, robot.model.nv))
        self._jacr = np.zeros((3, robot.model.nv))
        d = robot.data
        self.q_cmd = d.qpos[robot._arm_qpos].copy()
        self.torso_cmd = float(d.qpos[robot._torso_qpos])
        self.grip_cmd = 0.0
        self.base_vel = np.zeros(3)  # robot-frame vx, vy, wz the drive plans with (for acceleration limits)
        self.base_target = self._pose_state()
        self._down_base = self._down_orientation()
        self._perturb_left = 0
        self._perturb = np.zeros(12)
        self._perturbable = False  # perturb in free motion and while lining up, never while grasping or releasing
        self._driving = False
        self.last_clean_action = self._action()
        self.label = ""
        self.failed = False
        self._script = self._run()
        self._done = False

    # ------------------------------------------------------------------ public API
    @property
    def done(self) -> bool:
        return self._done

    def act(self) -> Step:
        """Next action (robot.act space) and the subtask label of this tick."""
        if not self._done:
            try:
                clean, self.label = next(self._script)
            except StopIteration:
                self._done = True
        if self._done:
            clean = self._action()
            self.label = "done"
        self.last_clean_action = clean.copy()
        return clean + self._noise_for(clean), self.label

    # ------------------------------------------------------------------ noise
    def _noise_for(self, clean: np.ndarray) -> np.ndarray:
        """Temporally correlated perturbations of the base target or the arm (never during grasp/release)."""
        if self.noise <= 0 or not self._perturbable:
            self._perturb_left = 0
            return np.zeros(12)
        if self._perturb_left <= 0 and self.rng.random() < 0.06 * min(1.0, self.noise):
            self._perturb_left = int(self.rng.integers(4, 10))
            p = np.zeros(12)
            if self._driving or self.rng.random() < 0.5:
                p[9:11] = self.rng.normal(0.0, 0.25 * self.noise, size=2)
                p[11] = self.rng.normal(0.0, 0.3 * self.noise)
            else:
                p[:7] = self.rng.normal(0.0, 0.12 * self.noise, size=7)
            self._perturb = p
        if self._perturb_left > 0:
            self._perturb_left -= 1
            return self._perturb
        return np.zeros(12)

    # ------------------------------------------------------------------ helpers
    def _action(self) -> np.ndarray:
        a = np.zeros(12)
        a[:7] = self.q_cmd
        a[7] = self.grip_cmd
        a[8] = self.torso_cmd
        a[9:12] = self.base_target
        return a

    def _pose_state(self) -> np.ndarray:
        """Base pose in the state's convention (yaw in [YAW_STATE_LOW, YAW_STATE_LOW + 2 pi))."""
        return np.asarray(self.robot.state()[9:12], dtype=np.float64)

    def _yaw_target(self, yaw: float) -> float:
        """``yaw`` expressed next to the current state yaw (the controller wraps; targets should not jump 2 pi)."""
        current = float(self._pose_state()[2])
        return current + wrap_angle(yaw - current)

    def _down_orientation(self) -> np.ndarray:
        """Hand pointing straight down, yaw fixed relative to the base (derived from the home posture)."""
        rot = self._fk(HOME_ARM)[1]
        yaw = float(self.robot.base_pose()[2])
        c, s = math.cos(-yaw), math.sin(-yaw)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        x = rz @ rot[:, 0]
        x[2] = 0.0
        x /= np.linalg.norm(x)
        z = np.array([0.0, 0.0, -1.0])
        y = np.cross(z, x)
        return np.stack([x, y, z], axis=1)

    def _down_world(self) -> np.ndarray:
        yaw = float(self.robot.base_pose()[2])
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ self._down_base

    def _fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mj, r, d = self._mj, self.robot, self._scratch
        d.qpos[:] = r.data.qpos
        d.qpos[r._arm_qpos] = q
        mj.mj_kinematics(r.model, d)
        return d.site_xpos[r._grip_site].copy(), d.site_xmat[r._grip_site].reshape(3, 3).copy()

    def _ik(self, q0: np.ndarray, pos: np.ndarray, rot: np.ndarray, iters: int = 20) -> np.ndarray:
        """Damped least squares on the grip site (position + orientation), with a weak pull to the home posture."""
        mj, r, d = self._mj, self.robot, self._scratch
        q = q0.copy()
        dof = r._arm_dof
        for _ in range(iters):
            p, rm = self._fk(q)
            ep = pos - p
            er = 0.5 * sum(np.cross(rm[:, i], rot[:, i]) for i in range(3))
            if np.linalg.norm(ep) < 2e-4 and np.linalg.norm(er) < 2e-3:
                break
            mj.mj_comPos(r.model, d)
            mj.mj_jacSite(r.model, d, self._jacp, self._jacr, r._grip_site)
            jac = np.vstack([self._jacp[:, dof], self._jacr[:, dof]])
            err = np.concatenate([ep, 0.6 * er])
            jjt = jac @ jac.T + 1e-4 * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            null = np.eye(7) - jac.T @ np.linalg.solve(jjt, jac)
            dq += null @ (0.05 * (HOME_ARM - q))
            step = np.max(np.abs(dq))
            if step > 0.3:
                dq *= 0.3 / step
            q = np.clip(q + dq, LO, HI)
        return q

    def _grip_measured(self) -> np.ndarray:
        return self.robot.grip_pose()[0]

    # ------------------------------------------------------------------ primitives
    def _drive(self, goal: tuple[float, float, float], label: str, torso: float) -> Iterator[Step]:
        """Holonomic drive through the doorway if needed, turning in the open, then a straight final approach.

        Each tick's base target is a waypoint ``v / BASE_GAIN`` ahead (the pose controller then moves at the planned
        velocity ``v``); within reach of the goal the target is the goal itself, so the policy learns where
        "go to the X" ends, not a velocity profile. The heading target is the goal's heading all the way (the pose
        controller turns at its own rate limit): "go to the X" then always asks for one heading per X, which a
        policy reads from the text alone instead of computing a turn from its measured heading
        (``drive_heading_labels`` in agent/sim_relabel.py gives data recorded before this the same labels).
        """
        r = self.robot
        gx, gy, gyaw = goal
        face = np.array([math.cos(gyaw), math.sin(gyaw)])
        pre = (gx - APPROACH_BACKOFF * face[0], gy - APPROACH_BACKOFF * face[1])
        waypoints: list[tuple[float, float, float, bool]] = []
        x0, y0, yaw0 = r.base_pose()
        door = sum(scene.DIVIDER_X) / 2
        if (x0 < door) != (gx < door):
            side = 1.0 if x0 > door else -1.0
            waypoints.append((door + 0.4 * side, 0.0, 0.2, True))
            waypoints.append((door - 0.4 * side, 0.0, 0.2, True))
        if math.hypot(gx - x0, gy - y0) > APPROACH_BACKOFF or abs(wrap_angle(gyaw - yaw0)) > 0.5:
            waypoints.append((pre[0], pre[1], 0.12, True))  # not already in front of it: turn in the open first
        waypoints.append((gx, gy, 0.008, False))
        self._driving = True
        self._perturbable = True
        for wx, wy, tol, passing in waypoints:
            for _ in range(400):
                x, y, yaw = r.base_pose()
                err = np.array([wx - x, wy - y])
                dist = float(np.linalg.norm(err))
                yaw_err = wrap_angle(gyaw - yaw)
                if passing and dist < tol:
                    break
                speed_now = float(np.linalg.norm(r.data.qvel[r._base_dof[:2]]))
                if not passing and dist < tol and abs(yaw_err) < 0.012 and speed_now < 0.03:
                    break
                self._perturbable = True
                self._toward_joints(HOME_ARM)
                self.torso_cmd += float(np.clip(torso - self.torso_cmd, -0.15 * self.dt, 0.15 * self.dt))
                if not passing and dist < 0.3 and abs(yaw_err) < 0.5:
                    self.base_vel[:] = 0.0
                    self.base_target = np.array([gx, gy, self._yaw_target(gyaw)])
                    yield self._action(), label
                    continue
                speed = BASE_SPEED if passing else min(BASE_SPEED, 1.8 * dist)
                v_world = err / max(dist, 1e-6) * speed
                c, s = math.cos(yaw), math.sin(yaw)
                v_robot = np.array([c * v_world[0] + s * v_world[1], -s * v_world[0] + c * v_world[1]])
                target = np.array([*v_robot, 0.0])
                limit = np.array([BASE_ACCEL, BASE_ACCEL, YAW_ACCEL]) * self.dt
                self.base_vel = self.base_vel + np.clip(target - self.base_vel, -limit, limit)
                vx, vy, _ = self.base_vel
                pose = self._pose_state()
                lead = np.array([c * vx - s * vy, s * vx + c * vy]) / BASE_GAIN
                self.base_target = np.array([pose[0] + lead[0], pose[1] + lead[1], self._yaw_target(gyaw)])
                yield self._action(), label
            else:
                logger.warning("drive to %s timed out at %s", goal, r.base_pose())
        self.base_vel[:] = 0.0
        self.base_target = np.array([gx, gy, self._yaw_target(gyaw)])
        self._driving = False
        self._perturbable = False
        # settle the torso if it is still moving
        while abs(torso - self.torso_cmd) > 1e-4:
            self.torso_cmd += float(np.clip(torso - self.torso_cmd, -0.15 * self.dt, 0.15 * self.dt))
            yield self._action(), label

    def _toward_joints(self, q_goal: np.ndarray) -> bool:
        delta = q_goal - self.q_cmd
        step = JOINT_SPEED * self.dt
        biggest = float(np.max(np.abs(delta)))
        if biggest <= step:
            self.q_cmd = q_goal.copy()
            return True
        self.q_cmd = self.q_cmd + delta * (step / biggest)
        return False

    def _joint_move(self, q_goal: np.ndarray, label: str) -> Iterator[Step]:
        self._perturbable = True
        while not self._toward_joints(q_goal):
            yield self._action(), label
        self._perturbable = False
        yield from self._settle(label, 0.03)

    def _settle(self, label: str, tol: float, max_ticks: int = 15) -> Iterator[Step]:
        """Wait until the measured arm is within ``tol`` rad of the command (servo lag, or after a perturbation)."""
        arm = self.robot._arm_qpos
        for _ in range(max_ticks):
            if np.max(np.abs(self.robot.data.qpos[arm] - self.q_cmd)) < tol:
                return
            yield self._action(), label

    def _hand_move(self, target: np.ndarray, label: str, speed: float, free: bool) -> Iterator[Step]:
        """Straight-line hand motion (commanded), hand pointing down, at ``speed`` m/s."""
        rot = self._down_world()
        self._perturbable = free
        for _ in range(200):
            cur = self._fk(self.q_cmd)[0]
            delta = target - cur
            dist = float(np.linalg.norm(delta))
            if dist < 0.004:
                break
            step = min(dist, speed * self.dt)
            self.q_cmd = self._ik(self.q_cmd, cur + delta / dist * step, rot)
            yield self._action(), label
        self._perturbable = False
        yield from self._settle(label, 0.01)

    def _hold(self, label: str, ticks: int) -> Iterator[Step]:
        for _ in range(ticks):
            yield self._action(), label

    def _hover_joints(self, height: float) -> np.ndarray:
        """Arm joints that put the hand ``height`` m above the floor, ``REACH`` straight ahead of the base.

        Relative to the base, so the same posture serves wherever the base is still driving to.
        """
        x, y, yaw = self.robot.base_pose()
        point = np.array([x + REACH * math.cos(yaw), y + REACH * math.sin(yaw), height])
        return self._ik(HOME_ARM, point, self._down_world(), iters=60)

    def _line_up(self, pose: tuple[float, float, float], q_hover: np.ndarray, label: str) -> Iterator[Step]:
        """Drive the base to ``pose`` (the target itself, it is close) while the arm unfolds to ``q_hover``.

        Perturbations are on: a pushed base or arm must come back to the same lined-up pose, which is what the
        policy has to learn from its cameras.
        """
        r = self.robot
        gx, gy, gyaw = pose
        for _ in range(300):
            self.base_target = np.array([gx, gy, self._yaw_target(gyaw)])
            arm_there = self._toward_joints(q_hover)
            x, y, yaw = r.base_pose()
            speed_now = float(np.linalg.norm(r.data.qvel[r._base_dof[:2]]))
            arm_err = float(np.max(np.abs(r.data.qpos[r._arm_qpos] - self.q_cmd)))
            if (
                arm_there
                and math.hypot(gx - x, gy - y) < ALIGNED_XY
                and abs(wrap_angle(gyaw - yaw)) < ALIGNED_YAW
                and speed_now < 0.02
                and arm_err < 0.02
                and self._perturb_left == 0
            ):
                break
            self._perturbable = True
            yield self._action(), label
        else:
            logger.warning("line-up to %s timed out at %s", pose, r.base_pose())
        self._perturbable = False

    # ------------------------------------------------------------------ task script
    def _run(self) -> Iterator[Step]:
        for move in self.robot.spec.moves:
            if self.robot.object_on(move.obj, move.target):
                continue
            yield from self._do_move(move)

    def _do_move(self, move: Move) -> Iterator[Step]:
        r = self.robot
        go_src, pick, go_dst, place = move.subtasks()
        src = FURNITURE_OF[move.source]
        dst = FURNITURE_OF[move.target]
        for attempt in range(3):
            if r.held_object != move.obj:
                p = r.object_position(move.obj)
                where = src if attempt == 0 else furniture_near(p)
                label = go_src if where == src else f"go to the {where}"
                if not in_work_zone(r.base_pose(), where):
                    yield from self._drive(standoff_pose(where), label, TORSO_FOR[where])
                yield from self._pick(move.obj, where, pick)
            if r.held_object != move.obj:
                logger.info("pick of %s failed (attempt %d)", move.obj, attempt + 1)
                continue
            yield from self._drive(standoff_pose(dst), go_dst, TORSO_FOR[dst])
            yield from self._place(move, place)
            if r.object_on(move.obj, move.target):
                return
            logger.info("place of %s on %s failed (attempt %d)", move.obj, move.target, attempt + 1)
        self.failed = True

    def _grasp_height(self, obj: str) -> float:
        """World z the hand closes at: a little below the object's top, never lower than just above its bottom."""
        p = self.robot.object_position(obj)
        bottom, top, _radius = self.robot.object_extent[obj]
        return max(p[2] + top - 0.03, p[2] + bottom + 0.02)

    def start_with_arm_at_hover(self) -> None:
        """Before any action: put the arm at the posture the first pick lines up with (the hand ``HOVER`` above
        the first object's grasp height, ``REACH`` straight ahead of the base).

        Why: in demonstrations that begin away from the object the arm usually finishes unfolding after the base
        has lined up, so "the arm is at hover" alone predicts "descend now", and a policy that learned that
        shortcut closes its gripper wherever the base happens to be. Starting beside the object with the arm
        already there shows the hand waiting while the base lines up, which only the cameras can tell.
        """
        r = self.robot
        q = self._hover_joints(self._grasp_height(r.spec.moves[0].obj) + HOVER)
        r.data.qpos[r._arm_qpos] = q
        r._ctrl_hold()
        r._mujoco.mj_forward(r.model, r.data)
        self.q_cmd = q.copy()
        self.last_clean_action = self._action()

    def _pick(self, obj: str, furniture: str, label: str) -> Iterator[Step]:
        r = self.robot
        for _ in range(3):
            p = r.object_position(obj)
            grasp_z = self._grasp_height(obj)
            self.grip_cmd = 0.0
            q_hover = self._hover_joints(grasp_z + HOVER)
            yield from self._line_up(reach_pose(furniture, p[0], p[1]), q_hover, label)
            grasp = self._fk(self.q_cmd)[0] - np.array([0.0, 0.0, HOVER])
            yield from self._hand_move(grasp, label, ARM_SLOW, free=False)
            self.grip_cmd = 1.0
            yield from self._hold(label, 6)
            if r.held_object == obj:
                yield from self._hand_move(grasp + np.array([0.0, 0.0, 0.15]), label, ARM_SLOW, free=False)
                yield from self._joint_move(HOME_ARM, label)
                return
            self.grip_cmd = 0.0
            yield from self._hold(label, 4)
            yield from self._hand_move(grasp + np.array([0.0, 0.0, HOVER]), label, ARM_SLOW, free=False)

    def _place_spot(self, move: Move) -> np.ndarray:
        """Where the held object's bottom goes (world x, y, z): the bowl or the sink's centre, else the object's
        fixed spot along the surface, ``REACH`` in from the stand-off."""
        r = self.robot
        if move.target == "bowl":
            b = r.object_position("bowl")
            return np.array([b[0], b[1], b[2] + 0.012])
        surface = scene.SURFACES[move.target]
        if move.target == "sink":
            cx, cy, _ = surface.area.center
            return np.array([cx, cy, surface.height])
        along = PLACE_ALONG[move.target].get(move.obj, DEFAULT_ALONG[move.target])
        if move.target == "table" and abs(r.object_position("bowl")[1] - along) < 0.25:
            along = -along  # the bowl stands there: the other end of the table
        x, y, yaw = standoff_pose(move.target, along)
        return np.array([x + REACH * math.cos(yaw), y + REACH * math.sin(yaw), surface.height])

    def _place(self, move: Move, label: str) -> Iterator[Step]:
        r = self.robot
        obj = move.obj
        spot = self._place_spot(move)
        bottom = r.object_extent[obj][0]
        grip = self._grip_measured()
        below_grip = r.object_position(obj)[2] + bottom - grip[2]  # object bottom relative to the grip point
        release_z = spot[2] + 0.015 - below_grip
        q_hover = self._hover_joints(release_z + HOVER)
        yield from self._line_up(reach_pose(FURNITURE_OF[move.target], spot[0], spot[1]), q_hover, label)
        release = self._fk(self.q_cmd)[0] - np.array([0.0, 0.0, HOVER])
        yield from self._hand_move(release, label, ARM_SLOW, free=False)
        self.grip_cmd = 0.0
        yield from self._hold(label, 5)
        yield from self._hand_move(release + np.array([0.0, 0.0, 0.12]), label, ARM_FAST, free=False)
        yield from self._joint_move(HOME_ARM, label)


def start_near(robot: SimKitchen, furniture: str, rng: np.random.Generator, heading_spread: float = 0.35) -> None:
    """Move the robot (before any action) to a perturbed pose at ``furniture``'s edge: demonstrations that begin
    mid-task, where the line-up and recovery the policy must learn happen, instead of always after a long drive.

    ``heading_spread`` (rad) bounds the heading error. Within the work zone's 0.25 rad the expert lines up and
    picks; with a wide spread (up to pi) it first drives "go to the X" from a wrong heading (turning in the open),
    the recovery a policy needs when it reaches a stand-off turned away and that no drive from afar demonstrates.
    """
    x, y, yaw = standoff_pose(furniture)
    face = FACING[furniture]
    back = rng.uniform(0.0, 0.25)
    side = rng.uniform(-0.45, 0.45)
    x += -back * math.cos(face) - side * math.sin(face)
    y += -back * math.sin(face) + side * math.cos(face)
    robot._set_base_pose(x, y, yaw + rng.uniform(-heading_spread, heading_spread))
    robot.data.qpos[robot._torso_qpos] = TORSO_FOR[furniture]
    robot._ctrl_hold()
    robot._mujoco.mj_forward(robot.model, robot.data)
