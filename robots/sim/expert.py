"""ScriptedExpert: solves every sim-kitchen task from simulator state and labels each tick with its subtask.

The script is a Python generator per task — drive to a standoff pose, pick top-down, drive, place — that reads
the simulator between ticks, so it is closed-loop: perturbations (``noise`` > 0) push the base or the arm off
course and the next ticks steer back, which is what demonstrations need to teach recovery. A failed grasp is
retried from above. Labels follow the paper's style ("go to the table", "pick up the can",
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
from robots.sim.kitchen import ARM_LIMITS, HOME_ARM, SimKitchen, standoff_pose, wrap_angle
from robots.sim.tasks import FURNITURE_OF, Move

logger = logging.getLogger(__name__)

Step = tuple[np.ndarray, str]

TORSO_FOR = {"table": 0.12, "counter": 0.28, "shelf": 0.2}
BASE_SPEED = 0.8  # m/s cruise
BASE_ACCEL = 1.6  # m/s^2
YAW_RATE = 1.3  # rad/s
YAW_ACCEL = 3.0  # rad/s^2
ARM_FAST = 0.45  # m/s free-space hand speed
ARM_SLOW = 0.2  # m/s near objects
JOINT_SPEED = 1.6  # rad/s in joint-space moves
APPROACH_BACKOFF = 0.35  # m: turn in the open before the final straight approach
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
        self.base_cmd = np.zeros(3)  # robot-frame vx, vy, wz (for acceleration limits)
        self._down_base = self._down_orientation()
        self._perturb_left = 0
        self._perturb = np.zeros(12)
        self._perturbable = False  # perturb only in free-space motion, never while grasping or releasing
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
            self.base_cmd[:] = 0.0
            clean = self._action()
            self.label = "done"
        self.last_clean_action = clean.copy()
        return clean + self._noise_for(clean), self.label

    # ------------------------------------------------------------------ noise
    def _noise_for(self, clean: np.ndarray) -> np.ndarray:
        """Temporally correlated perturbations, only while moving in free space (never during grasp/release)."""
        if self.noise <= 0 or not self._perturbable:
            self._perturb_left = 0
            return np.zeros(12)
        if self._perturb_left <= 0 and self.rng.random() < 0.05 * min(1.0, self.noise):
            self._perturb_left = int(self.rng.integers(4, 9))
            p = np.zeros(12)
            if self._driving:
                p[9:11] = self.rng.normal(0.0, 0.35 * self.noise, size=2)
                p[11] = self.rng.normal(0.0, 0.5 * self.noise)
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
        a[9:12] = self.base_cmd
        return a

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
        """Holonomic drive through the doorway if needed, turning in the open, then a straight final approach."""
        r = self.robot
        gx, gy, gyaw = goal
        face = np.array([math.cos(gyaw), math.sin(gyaw)])
        pre = (gx - APPROACH_BACKOFF * face[0], gy - APPROACH_BACKOFF * face[1])
        waypoints: list[tuple[float, float, float, bool]] = []
        x0 = float(r.base_pose()[0])
        door = sum(scene.DIVIDER_X) / 2
        if (x0 < door) != (gx < door):
            side = 1.0 if x0 > door else -1.0
            waypoints.append((door + 0.4 * side, 0.0, 0.2, True))
            waypoints.append((door - 0.4 * side, 0.0, 0.2, True))
        waypoints.append((pre[0], pre[1], 0.12, True))
        waypoints.append((gx, gy, 0.012, False))
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
                if not passing and dist < tol and abs(yaw_err) < 0.015 and np.linalg.norm(self.base_cmd) < 0.05:
                    break
                self._perturbable = dist > 0.5
                speed = BASE_SPEED if passing else min(BASE_SPEED, 1.8 * dist)
                v_world = err / max(dist, 1e-6) * speed
                c, s = math.cos(yaw), math.sin(yaw)
                v_robot = np.array([c * v_world[0] + s * v_world[1], -s * v_world[0] + c * v_world[1]])
                wz = float(np.clip(2.5 * yaw_err, -YAW_RATE, YAW_RATE))
                target = np.array([*v_robot, wz])
                limit = np.array([BASE_ACCEL, BASE_ACCEL, YAW_ACCEL]) * self.dt
                self.base_cmd = self.base_cmd + np.clip(target - self.base_cmd, -limit, limit)
                self._toward_joints(HOME_ARM)
                self.torso_cmd += float(np.clip(torso - self.torso_cmd, -0.15 * self.dt, 0.15 * self.dt))
                yield self._action(), label
            else:
                logger.warning("drive to %s timed out at %s", goal, r.base_pose())
        self.base_cmd[:] = 0.0
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
                yield from self._drive(
                    standoff_pose(where, p[0] if where == "shelf" else p[1]), label, TORSO_FOR[where]
                )
                yield from self._pick(move.obj, pick)
            if r.held_object != move.obj:
                logger.info("pick of %s failed (attempt %d)", move.obj, attempt + 1)
                continue
            spot = self._place_spot(move)
            yield from self._drive(standoff_pose(dst, spot[0] if dst == "shelf" else spot[1]), go_dst, TORSO_FOR[dst])
            yield from self._place(move.obj, spot, place)
            if r.object_on(move.obj, move.target):
                return
            logger.info("place of %s on %s failed (attempt %d)", move.obj, move.target, attempt + 1)
        self.failed = True

    def _pick(self, obj: str, label: str) -> Iterator[Step]:
        r = self.robot
        for _ in range(3):
            p = r.object_position(obj)
            bottom, top, _radius = r.object_extent[obj]
            grasp_z = max(p[2] + top - 0.03, p[2] + bottom + 0.02)
            grasp = np.array([p[0], p[1], grasp_z])
            above = grasp + np.array([0.0, 0.0, 0.12])
            self.grip_cmd = 0.0
            yield from self._hand_move(above, label, ARM_FAST, free=True)
            yield from self._hand_move(grasp, label, ARM_SLOW, free=False)
            self.grip_cmd = 1.0
            yield from self._hold(label, 6)
            if r.held_object == obj:
                yield from self._hand_move(grasp + np.array([0.0, 0.0, 0.15]), label, ARM_SLOW, free=False)
                yield from self._joint_move(HOME_ARM, label)
                return
            self.grip_cmd = 0.0
            yield from self._hold(label, 4)
            yield from self._hand_move(above, label, ARM_SLOW, free=False)

    def _place_spot(self, move: Move) -> np.ndarray:
        """Where the held object's bottom goes: the bowl or sink centre, else the freest spot on the surface."""
        r = self.robot
        if move.target == "bowl":
            b = r.object_position("bowl")
            return np.array([b[0], b[1], b[2] + 0.012])
        surface = scene.SURFACES[move.target]
        if move.target == "sink":
            cx, cy, _ = surface.area.center
            return np.array([cx, cy, surface.height])
        area = surface.area
        others = [r.object_position(n) for n in r.object_names if n != move.obj]
        best, best_score = None, -1.0
        for x in np.linspace(area.x0 + 0.03, area.x1 - 0.03, 4):
            for y in np.linspace(area.y0 + 0.04, area.y1 - 0.04, 9):
                score = min([math.hypot(x - o[0], y - o[1]) for o in others] + [1.0])
                if score > best_score:
                    best, best_score = (x, y), score
        assert best is not None
        return np.array([best[0], best[1], surface.height])

    def _place(self, obj: str, spot: np.ndarray, label: str) -> Iterator[Step]:
        r = self.robot
        bottom = r.object_extent[obj][0]
        grip = self._grip_measured()
        below_grip = r.object_position(obj)[2] + bottom - grip[2]  # object bottom relative to the grip point
        release = np.array([spot[0], spot[1], spot[2] + 0.015 - below_grip])
        above = release + np.array([0.0, 0.0, 0.12])
        yield from self._hand_move(above, label, ARM_FAST, free=True)
        yield from self._hand_move(release, label, ARM_SLOW, free=False)
        self.grip_cmd = 0.0
        yield from self._hold(label, 5)
        yield from self._hand_move(release + np.array([0.0, 0.0, 0.12]), label, ARM_FAST, free=False)
        yield from self._joint_move(HOME_ARM, label)
