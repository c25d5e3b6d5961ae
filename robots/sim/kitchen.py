"""SimKitchen: the simulated household mobile manipulator ("sim-kitchen" in the registry).

Action (12, robot units; ``describe()`` is authoritative):
  arm_joint1..7   absolute joint position targets [rad], tracked by MuJoCo position servos
  gripper         0 = open .. 1 = closed (finger gap follows it; the grasp assist grasps at >= 0.5 and releases
                  below 0.35, a hysteresis so a policy hovering around 0.5 does not drop what it holds)
  torso           absolute torso-lift target [m], 0 .. 0.34
  base_x, base_y  base pose target in the odometry (world) frame [m]
  base_yaw        base heading target [rad] (same convention as the state; the controller takes the short way)
Every dimension is an absolute target, so "stay here" is the current state and a small error in a predicted
action is a small error in pose, not a velocity that integrates into drift. The base controller (``act``) drives
toward the pose target at ``BASE_GAIN`` per second of error, capped at the base's speed limits; a target far away
means "full speed toward it in a straight line", so a policy (or the scripted expert) gives nearby waypoints.
Interface version 2 (``INTERFACE_VERSION``): version 1 commanded base velocities; checkpoints record the version
they were trained on and are refused on a robot with another.

State (12): arm_joint1..7 [rad], gripper opening [m] (finger gap), torso [m], base_x, base_y [m], base_yaw [rad]
(world-frame odometry of the base origin under the arm mount; yaw in [-pi/2, 3pi/2), see YAW_STATE_LOW).

Grasp assist: when the gripper command closes (>= 0.5) while an object's axis passes between the fingers, the
object is welded to the hand (a MuJoCo weld equality) until the gripper opens again. Pure physics grasping of
robosuite's mesh objects was not reliable enough for a >= 95 % expert; the assist keeps demonstrations about
*where* to grasp, which is what the policy must learn.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence

import numpy as np

from robots.base import Robot
from robots.sim import scene
from robots.sim.tasks import FURNITURE_OF, TASKS, TaskSpec, task_spec
from robots.types import CameraSpec, JointSpec, Observation, RobotDescription

logger = logging.getLogger(__name__)

CAMERA_MJCF_NAMES = {"head": "head", "wrist": "robot0_eye_in_hand", "third": "third"}
ARM_LIMITS = [
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
]
HOME_ARM = np.array([0.0, -0.35, 0.0, -2.45, 0.0, 2.1, 0.785398])  # arm tucked above the base, hand down
TORSO_RANGE = (0.0, 0.34)
MAX_BASE_SPEED = 0.8  # m/s, cap of the base pose controller
MAX_BASE_YAW_RATE = 1.3  # rad/s
BASE_GAIN = 4.0  # 1/s: commanded base velocity per unit of pose error (linear and yaw)
INTERFACE_VERSION = 2  # bump when the meaning of the action or state vector changes
ROBOT_FRONT = 0.15  # base origin to the front of the wheeled base [m]
STANDOFF = 0.24  # base origin to the edge of the furniture it works at [m]
# The state reports yaw in [-pi/2, 3pi/2): the working headings (0 counter, pi/2 shelf, pi table) are then all far
# from the wrap-around, so a learned policy never sees the state jump from +pi to -pi while working at the table.
YAW_STATE_LOW = -math.pi / 2
GRIP_CLOSE = 0.5  # gripper command at which the grasp assist may take hold of an object
GRIP_RELEASE = 0.35  # ... and below which it lets go
GRASP_SLACK = 0.02  # how far off-centre (beyond the object's radius) the closing fingers still take hold [m]
GRASP_IN_PLANE = 0.035  # ... and across the closing direction [m]
MAX_OPERATOR_CAMERA_SIZE = 640  # the scene's offscreen buffer is at least this large (scene._visual_settings)

ACTION_NAMES = [f"arm_joint{i}" for i in range(1, 8)] + ["gripper", "torso", "base_x", "base_y", "base_yaw"]
STATE_NAMES = [f"arm_joint{i}" for i in range(1, 8)] + ["gripper", "torso", "base_x", "base_y", "base_yaw"]


REACH = 0.45  # base origin to the point the arm picks at / places over, straight ahead [m]
# Where "go to the X" ends: a fixed stand-off per piece of furniture, facing it, halfway along its work area
# (the counter's between its free top and the sink). Fixed, so the policy learns it from the text and odometry;
# lining up with an object (seen in the cameras) is part of the pick/place subtask that follows.
WORK_ALONG = {"table": 0.0, "counter": -0.28, "shelf": 0.35}
FACING = {"table": math.pi, "counter": 0.0, "shelf": math.pi / 2}


def wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def standoff_pose(furniture: str, along: float | None = None) -> tuple[float, float, float]:
    """Where the base stands to work at ``furniture``: ``STANDOFF`` from its edge, ``along`` it (default: the
    fixed work spot ``WORK_ALONG``), facing it."""
    along = WORK_ALONG[furniture] if along is None else along
    if furniture == "table":
        return (scene.TABLE.x1 + STANDOFF, along, math.pi)
    if furniture == "counter":
        return (scene.COUNTER.x0 - STANDOFF, along, 0.0)
    if furniture == "shelf":
        return (along, scene.SHELF.y0 - STANDOFF, math.pi / 2)
    raise ValueError(f"no standoff for {furniture!r}")


def reach_pose(furniture: str, x: float, y: float) -> tuple[float, float, float]:
    """The base pose facing ``furniture`` that puts the world point (x, y) ``REACH`` straight ahead of the base."""
    yaw = FACING[furniture]
    return (x - REACH * math.cos(yaw), y - REACH * math.sin(yaw), yaw)


def in_work_zone(pose: Sequence[float], furniture: str) -> bool:
    """Whether a base pose is at ``furniture``'s edge facing it (anywhere along it): where pick/place happen."""
    x, y, yaw = (float(v) for v in pose)
    sx, sy, syaw = standoff_pose(furniture)
    face_x, face_y = math.cos(syaw), math.sin(syaw)
    depth = (sx - x) * face_x + (sy - y) * face_y  # > 0: farther back than the stand-off
    along = -(x - sx) * face_y + (y - sy) * face_x
    return bool(-0.08 < depth < 0.3 and abs(along) < 0.75 and abs(wrap_angle(yaw - syaw)) < 0.25)


class SimKitchen(Robot):
    """A PandaOmron in a two-room household (kitchen with counter, sink and shelf; dining room with a table)."""

    def __init__(
        self,
        task: str = TASKS[0],
        camera_size: int = 96,
        cameras: Sequence[str] = ("head", "wrist"),
        operator_camera_size: int | None = None,
        control_hz: float = 20.0,
        seed: int | None = 0,
        render: bool = True,
        timestep: float = 0.005,
    ) -> None:
        import mujoco

        unknown = [c for c in cameras if c not in CAMERA_MJCF_NAMES]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; sim-kitchen cameras are {list(CAMERA_MJCF_NAMES)}")
        if int(camera_size) < 16:
            raise ValueError(f"camera_size must be >= 16 pixels, got {camera_size}")
        if operator_camera_size is not None and not 16 <= int(operator_camera_size) <= MAX_OPERATOR_CAMERA_SIZE:
            raise ValueError(
                f"operator_camera_size must be 16..{MAX_OPERATOR_CAMERA_SIZE} pixels, got {operator_camera_size}"
            )
        if not control_hz > 0:
            raise ValueError(f"control_hz must be > 0, got {control_hz}")
        self._mujoco = mujoco
        self._spec: TaskSpec = task_spec(task)
        self.camera_size = int(camera_size)
        # The operator view is a second render of the same cameras at the same instant; none when the sizes agree
        # (the policy's frames are then what people see, at no extra cost).
        operator = int(operator_camera_size) if operator_camera_size is not None else self.camera_size
        self.operator_camera_size: int | None = operator if operator != self.camera_size else None
        self.cameras = tuple(cameras)
        self.control_hz = float(control_hz)
        self.render_enabled = bool(render)
        self.model = mujoco.MjModel.from_xml_string(scene.build_scene_xml(max(self.camera_size, operator), timestep))
        self.data = mujoco.MjData(self.model)
        self.n_substeps = max(1, round(1.0 / (self.control_hz * self.model.opt.timestep)))
        self._lock = threading.RLock()
        self._renderers: dict[tuple[int, int], object] = {}  # (thread or 0 for a shared context, size)
        self._closed = False
        self._index()
        self._seed = seed
        self.held_object: str | None = None
        self._held_rel = (np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))
        self._latched: dict[int, int] = {}
        self.ticks = 0
        self.reset(seed)

    # ------------------------------------------------------------------ model bookkeeping
    def _index(self) -> None:
        m, mj = self.model, self._mujoco
        jid = lambda n: mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        aid = lambda n: mj.mj_name2id(m, mj.mjtObj.mjOBJ_ACTUATOR, n)  # noqa: E731
        self._arm_qpos = np.array([m.jnt_qposadr[jid(n)] for n in scene.ARM_JOINTS])
        self._arm_dof = np.array([m.jnt_dofadr[jid(n)] for n in scene.ARM_JOINTS])
        self._base_qpos = np.array([m.jnt_qposadr[jid(n)] for n in scene.BASE_JOINTS])
        self._base_dof = np.array([m.jnt_dofadr[jid(n)] for n in scene.BASE_JOINTS])
        self._torso_qpos = m.jnt_qposadr[jid(scene.TORSO_JOINT)]
        # robosuite's yaw hinge sits 0.21 m behind the base origin; we expose and command the origin (the arm mount)
        self._yaw_pivot = np.array(m.jnt_pos[jid(scene.BASE_JOINTS[2])][:2], dtype=np.float64)
        self._finger_qpos = np.array([m.jnt_qposadr[jid(n)] for n in scene.FINGER_JOINTS])
        self._arm_act = np.array([aid(f"{n}_pos") for n in scene.ARM_JOINTS])
        self._torso_act = aid("torso_pos")
        self._base_act = np.array([aid(f"mobilebase0_actuator_mobile_{k}") for k in ("forward", "side", "yaw")])
        self._finger_act = np.array([aid(f"gripper0_right_gripper_finger_joint{i}") for i in (1, 2)])
        self._grip_site = mj.mj_name2id(m, mj.mjtObj.mjOBJ_SITE, scene.GRIP_SITE)
        self._eef_body = mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, scene.EEF_BODY)
        self.object_names = [*scene.GRASPABLE, "bowl"]
        self._obj_body = {n: mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, f"{n}_main") for n in self.object_names}
        self._obj_qpos = {n: m.jnt_qposadr[jid(f"{n}_joint0")] for n in self.object_names}
        self._obj_dof = {n: m.jnt_dofadr[jid(f"{n}_joint0")] for n in self.object_names}
        self._weld = {n: mj.mj_name2id(m, mj.mjtObj.mjOBJ_EQUALITY, f"grasp_{n}") for n in self.object_names}
        self.object_extent = self._object_extents()

    def _object_extents(self) -> dict[str, tuple[float, float, float]]:
        """(bottom z, top z, horizontal radius) of each object's collision geometry in its body frame.

        Measured from the compiled meshes because robosuite's bottom/top sites are only approximate
        (the can's bottom site is 2 cm below its mesh).
        """
        mj, m = self._mujoco, self.model
        extents = {}
        for name, body in self._obj_body.items():
            points = []
            for g in range(m.ngeom):
                if m.geom_bodyid[g] != body or (m.geom_contype[g] == 0 and m.geom_conaffinity[g] == 0):
                    continue
                rot = np.zeros(9)
                mj.mju_quat2Mat(rot, m.geom_quat[g])
                rot = rot.reshape(3, 3)
                if m.geom_type[g] == mj.mjtGeom.mjGEOM_MESH:
                    mesh = m.geom_dataid[g]
                    start, count = m.mesh_vertadr[mesh], m.mesh_vertnum[mesh]
                    local = m.mesh_vert[start : start + count]
                else:  # primitive: the corners of its bounding box
                    half = m.geom_aabb[g][3:]
                    local = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
                points.append(local @ rot.T + m.geom_pos[g])
            pts = np.concatenate(points)
            radius = float(np.max(np.linalg.norm(pts[:, :2], axis=1)))
            extents[name] = (float(pts[:, 2].min()), float(pts[:, 2].max()), radius)
        return extents

    # ------------------------------------------------------------------ Robot interface
    def describe(self) -> RobotDescription:
        s, o = self.camera_size, self.operator_camera_size
        r = scene.ROOM_BOUNDS
        cams = [
            CameraSpec(name=c, height=s, width=s, wrist=(c == "wrist"), operator_height=o, operator_width=o)
            for c in self.cameras
        ]
        arm = [
            JointSpec(name=f"arm_joint{i + 1}", unit="rad", lower=lo, upper=hi) for i, (lo, hi) in enumerate(ARM_LIMITS)
        ]
        actions = [
            *arm,
            JointSpec(name="gripper", unit="1 (0 open, 1 closed)", lower=0.0, upper=1.0),
            JointSpec(name="torso", unit="m", lower=TORSO_RANGE[0], upper=TORSO_RANGE[1]),
            JointSpec(name="base_x", unit="m (world)", lower=r.x0, upper=r.x1),
            JointSpec(name="base_y", unit="m (world)", lower=r.y0, upper=r.y1),
            # a target may lie a little past the state's yaw range (the short way round from near its ends)
            JointSpec(
                name="base_yaw", unit="rad (world)", lower=YAW_STATE_LOW - 1.0, upper=YAW_STATE_LOW + 2 * math.pi + 1.0
            ),
        ]
        state = [
            *arm,
            JointSpec(name="gripper", unit="m (finger gap)", lower=0.0, upper=0.08),
            JointSpec(name="torso", unit="m", lower=TORSO_RANGE[0], upper=TORSO_RANGE[1]),
            JointSpec(name="base_x", unit="m (world)", lower=r.x0, upper=r.x1),
            JointSpec(name="base_y", unit="m (world)", lower=r.y0, upper=r.y1),
            JointSpec(name="base_yaw", unit="rad (world)", lower=YAW_STATE_LOW, upper=YAW_STATE_LOW + 2 * math.pi),
        ]
        return RobotDescription(
            name="sim-kitchen",
            robot_type="panda_omron",
            cameras=cams,
            state=state,
            actions=actions,
            control_hz=self.control_hz,
            tasks=list(TASKS),
            interface_version=INTERFACE_VERSION,
        )

    @property
    def task(self) -> str:
        return self._spec.text

    @property
    def spec(self) -> TaskSpec:
        return self._spec

    def set_task(self, task: str) -> None:
        self._spec = task_spec(task)

    def reset(self, seed: int | None = None) -> Observation:
        with self._lock:
            self._reset_state(seed)
            return self.observe()

    def _reset_state(self, seed: int | None) -> None:
        mj, m, d = self._mujoco, self.model, self.data
        rng = np.random.default_rng(seed)
        mj.mj_resetData(m, d)
        m.eq_active0[:] = 0
        d.eq_active[:] = 0
        self.held_object = None
        self._latched = {}
        self.ticks = 0
        # robot: somewhere in the open middle of the kitchen, random heading
        x, y = rng.uniform(-0.3, 0.6), rng.uniform(-0.5, 0.5)
        yaw = rng.uniform(-math.pi, math.pi)
        self._set_base_pose(x, y, yaw)
        d.qpos[self._arm_qpos] = HOME_ARM + rng.uniform(-0.05, 0.05, size=7)
        d.qpos[self._torso_qpos] = 0.2
        d.qpos[self._finger_qpos] = (0.04, -0.04)
        self._place_objects(rng)
        self._ctrl_hold()
        mj.mj_forward(m, d)
        # let objects settle onto their surfaces (robot servos hold position meanwhile)
        mj.mj_step(m, d, nstep=20)
        d.time = 0.0

    def _place_objects(self, rng: np.random.Generator) -> None:
        spec = self._spec
        placed: dict[str, list[tuple[float, float, float]]] = {}  # surface -> (x, y, radius)

        def sample(surface: str, radius: float) -> tuple[float, float] | None:
            area = scene.SURFACES[surface].area
            for _ in range(200):
                px = rng.uniform(area.x0, area.x1)
                py = rng.uniform(area.y0, area.y1)
                if all(math.hypot(px - ox, py - oy) > radius + orad + 0.04 for ox, oy, orad in placed.get(surface, [])):
                    placed.setdefault(surface, []).append((px, py, radius))
                    return px, py
            return None

        def put(name: str, surface: str) -> bool:
            bottom, _, radius = self.object_extent[name]
            spot = sample(surface, radius)
            if spot is None:
                return False
            z = scene.SURFACES[surface].height - bottom + 0.002
            yaw = rng.uniform(-math.pi, math.pi) if name != "bowl" else 0.0
            self._set_object_pose(name, (spot[0], spot[1], z), yaw)
            return True

        # the bowl always stands on the table; task objects first, then distractors
        if not put("bowl", "table"):
            raise RuntimeError("could not place the bowl")
        for move in spec.moves:
            if not put(move.obj, move.source):
                raise RuntimeError(f"could not place {move.obj} on {move.source}")
        targets = {FURNITURE_OF[m.target] for m in spec.moves} | {m.target for m in spec.moves}
        surfaces = [s for s in spec.distractor_surfaces if s not in targets] or ["shelf"]
        parked = 0
        for name in scene.GRASPABLE:
            if name in spec.objects:
                continue
            order = list(rng.permutation(surfaces))
            if not any(put(name, str(s)) for s in order):
                # nowhere left: park it on the floor in a dining-room corner, out of the way
                bottom = self.object_extent[name][0]
                self._set_object_pose(name, (-3.0 + 0.15 * parked, 1.9, -bottom + 0.002), 0.0)
                parked += 1

    def _set_object_pose(self, name: str, pos: Sequence[float], yaw: float) -> None:
        adr = self._obj_qpos[name]
        self.data.qpos[adr : adr + 3] = pos
        self.data.qpos[adr + 3 : adr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        dof = self._obj_dof[name]
        self.data.qvel[dof : dof + 6] = 0.0

    def _ctrl_hold(self) -> None:
        d = self.data
        d.ctrl[self._arm_act] = d.qpos[self._arm_qpos]
        d.ctrl[self._torso_act] = d.qpos[self._torso_qpos]
        d.ctrl[self._base_act] = 0.0
        d.ctrl[self._finger_act] = (0.04, -0.04)

    def hold_action(self) -> np.ndarray:
        """Stay where you are: arm, torso and base at their measured positions, gripper unchanged."""
        with self._lock:
            d = self.data
            action = np.zeros(12, dtype=np.float64)
            action[:7] = d.qpos[self._arm_qpos]
            action[7] = 1.0 if self.held_object is not None or d.ctrl[self._finger_act[0]] < 0.02 else 0.0
            action[8] = d.qpos[self._torso_qpos]
            action[9:12] = self.state()[9:12]
            return action

    def current_state(self) -> np.ndarray:
        with self._lock:
            return self.state()

    def act(self, action: np.ndarray) -> None:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (12,):
            raise ValueError(f"sim-kitchen action must have shape (12,) ({', '.join(ACTION_NAMES)}), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"sim-kitchen action contains NaN or inf: {a.tolist()}")
        with self._lock:
            if self._closed:
                raise RuntimeError("robot is closed")
            m, d = self.model, self.data
            lo = np.array([lo for lo, _ in ARM_LIMITS])
            hi = np.array([hi for _, hi in ARM_LIMITS])
            d.ctrl[self._arm_act] = np.clip(a[:7], lo, hi)
            grip = float(np.clip(a[7], 0.0, 1.0))
            d.ctrl[self._finger_act] = (0.04 * (1.0 - grip), -0.04 * (1.0 - grip))
            d.ctrl[self._torso_act] = float(np.clip(a[8], *TORSO_RANGE))
            self._drive_toward(a[9:12])
            self._mujoco.mj_step(m, d, nstep=self.n_substeps)
            self._snap_held_object()
            self._update_grasp(grip)
            self.ticks += 1
            self._update_milestones()

    def _drive_toward(self, target: np.ndarray) -> None:
        """Base pose controller: world velocity proportional to the pose error, capped at the speed limits."""
        d = self.data
        x, y, yaw = self.base_pose()
        err = np.array([float(target[0]) - x, float(target[1]) - y]) * BASE_GAIN
        speed = float(np.linalg.norm(err))
        if speed > MAX_BASE_SPEED:
            err *= MAX_BASE_SPEED / speed
        wz = float(np.clip(BASE_GAIN * wrap_angle(float(target[2]) - yaw), -MAX_BASE_YAW_RATE, MAX_BASE_YAW_RATE))
        q_yaw = float(d.qpos[self._base_qpos[2]])
        c, s = math.cos(q_yaw), math.sin(q_yaw)
        # slide joints move the yaw pivot; add the pivot's velocity so the commanded velocity is the origin's
        rpx, rpy = c * self._yaw_pivot[0] - s * self._yaw_pivot[1], s * self._yaw_pivot[0] + c * self._yaw_pivot[1]
        d.ctrl[self._base_act] = (err[0] - wz * rpy, err[1] + wz * rpx, wz)

    # ------------------------------------------------------------------ grasp assist
    def grip_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """World position and rotation matrix of the point between the fingertips."""
        return self.data.site_xpos[self._grip_site].copy(), self.data.site_xmat[self._grip_site].reshape(3, 3).copy()

    def object_position(self, name: str) -> np.ndarray:
        return self.data.xpos[self._obj_body[name]].copy()

    def _graspable(self, name: str) -> bool:
        if name == "bowl":
            return False
        g, rot = self.grip_pose()
        p = self.object_position(name)
        bottom, top, radius = self.object_extent[name]
        rel = rot.T @ (p - g)  # object origin in the gripper frame (z = approach axis)
        closing_axis = abs(rel[1])  # fingers slide along the site's y axis
        in_plane = abs(rel[0])
        height_ok = p[2] + bottom - 0.01 <= g[2] <= p[2] + top + 0.015
        return bool(closing_axis < radius + GRASP_SLACK and in_plane < GRASP_IN_PLANE and height_ok)

    def _update_grasp(self, grip_command: float) -> None:
        mj, m, d = self._mujoco, self.model, self.data
        if self.held_object is not None and grip_command < GRIP_RELEASE:
            d.eq_active[self._weld[self.held_object]] = 0
            self.held_object = None
            return
        if self.held_object is not None or grip_command < GRIP_CLOSE:
            return
        for name in scene.GRASPABLE:
            if self._graspable(name):
                eq = self._weld[name]
                # relative pose of the object in the hand frame, frozen at grasp time
                hand_pos, hand_quat = d.xpos[self._eef_body], d.xquat[self._eef_body]
                obj_pos, obj_quat = d.xpos[self._obj_body[name]], d.xquat[self._obj_body[name]]
                inv = np.zeros(4)
                mj.mju_negQuat(inv, hand_quat)
                rel_pos = np.zeros(3)
                mj.mju_rotVecQuat(rel_pos, obj_pos - hand_pos, inv)
                rel_quat = np.zeros(4)
                mj.mju_mulQuat(rel_quat, inv, obj_quat)
                m.eq_data[eq, 0:3] = 0.0
                m.eq_data[eq, 3:6] = rel_pos
                m.eq_data[eq, 6:10] = rel_quat
                m.eq_data[eq, 10] = 1.0
                d.eq_active[eq] = 1
                self.held_object = name
                self._held_rel = (rel_pos.copy(), rel_quat.copy())
                logger.debug("grasp assist: holding %s", name)
                return

    def _snap_held_object(self) -> None:
        """Put the held object exactly back at its grasp-time pose in the hand.

        The weld carries the object through the substeps; snapping once per tick removes the sag and swing a soft
        constraint accumulates while the base accelerates, so a held bottle stays upright.
        """
        if self.held_object is None:
            return
        mj, d = self._mujoco, self.data
        rel_pos, rel_quat = self._held_rel
        hand_pos, hand_quat = d.xpos[self._eef_body], d.xquat[self._eef_body]
        pos = np.zeros(3)
        mj.mju_rotVecQuat(pos, rel_pos, hand_quat)
        quat = np.zeros(4)
        mj.mju_mulQuat(quat, hand_quat, rel_quat)
        adr, dof = self._obj_qpos[self.held_object], self._obj_dof[self.held_object]
        d.qpos[adr : adr + 3] = hand_pos + pos
        d.qpos[adr + 3 : adr + 7] = quat
        d.qvel[dof : dof + 6] = 0.0
        mj.mj_forward(self.model, d)

    # ------------------------------------------------------------------ task state
    def object_on(self, name: str, target: str) -> bool:
        """Whether ``name`` rests on/in ``target`` (a surface or the bowl) and is not held."""
        if self.held_object == name:
            return False
        p = self.object_position(name)
        bottom = p[2] + self.object_extent[name][0]
        if target == "bowl":
            b = self.object_position("bowl")
            return bool(math.hypot(p[0] - b[0], p[1] - b[1]) < 0.085 and b[2] - 0.01 < bottom < b[2] + 0.05)
        if target == "sink":
            s = scene.SINK
            return bool(s.contains_xy(p[0], p[1], margin=0.01) and s.z0 - 0.01 < bottom < s.z0 + 0.05)
        surface = scene.SURFACES[target]
        furniture = {"table": scene.TABLE, "counter": scene.COUNTER, "shelf": scene.SHELF}[target]
        on_top = furniture.contains_xy(p[0], p[1], margin=0.0) and abs(bottom - surface.height) < 0.03
        if target == "counter":
            on_top = on_top and not scene.SINK.contains_xy(p[0], p[1])
        return bool(on_top)

    def base_pose(self) -> np.ndarray:
        """World (x, y, yaw) of the base origin (under the arm mount), yaw wrapped to [-pi, pi)."""
        qx, qy, yaw = self.data.qpos[self._base_qpos]
        c, s = math.cos(yaw), math.sin(yaw)
        px, py = self._yaw_pivot
        return np.array([qx + px - (c * px - s * py), qy + py - (s * px + c * py), wrap_angle(float(yaw))])

    def _set_base_pose(self, x: float, y: float, yaw: float) -> None:
        c, s = math.cos(yaw), math.sin(yaw)
        px, py = self._yaw_pivot
        self.data.qpos[self._base_qpos] = (x - px + (c * px - s * py), y - py + (s * px + c * py), yaw)

    def _near(self, furniture: str) -> bool:
        x, y, _yaw = self.base_pose()
        if furniture == "table":
            return bool(x < scene.TABLE.x1 + 0.5 and scene.TABLE.y0 < y < scene.TABLE.y1)
        if furniture == "counter":
            return bool(x > scene.COUNTER.x0 - 0.5 and scene.COUNTER.y0 < y < scene.COUNTER.y1)
        if furniture == "shelf":
            return bool(y > scene.SHELF.y0 - 0.5 and scene.SHELF.x0 < x < scene.SHELF.x1)
        return False

    def _update_milestones(self) -> None:
        """Latch per-move progress levels: 1 reached source, 2 picked, 3 reached target (holding), 4 placed."""
        for i, move in enumerate(self._spec.moves):
            level = self._latched.get(i, 0)
            if level < 1 and self._near(FURNITURE_OF[move.source]):
                level = 1
            if level < 2 and self.held_object == move.obj:
                level = 2
            if level == 2 and self.held_object == move.obj and self._near(FURNITURE_OF[move.target]):
                level = 3
            self._latched[i] = level

    def move_done(self, index: int) -> bool:
        move = self._spec.moves[index]
        return self.object_on(move.obj, move.target)

    def task_success(self) -> bool:
        with self._lock:
            return all(self.move_done(i) for i in range(len(self._spec.moves)))

    def task_progress(self) -> float:
        with self._lock:
            moves = self._spec.moves
            levels = [4 if self.move_done(i) else self._latched.get(i, 0) for i in range(len(moves))]
            return float(sum(levels) / (4 * len(moves)))

    # ------------------------------------------------------------------ observation
    def state(self) -> np.ndarray:
        d = self.data
        q = d.qpos
        gap = float(q[self._finger_qpos[0]] - q[self._finger_qpos[1]])
        base = self.base_pose()
        yaw = (float(base[2]) - YAW_STATE_LOW) % (2 * math.pi) + YAW_STATE_LOW
        return np.array(
            [*q[self._arm_qpos], gap, q[self._torso_qpos], base[0], base[1], yaw],
            dtype=np.float32,
        )

    def _renderer(self, size: int) -> object:
        """The renderer of square `size` px frames for the calling thread.

        An OpenGL context is current in one thread at a time. With EGL (the default) we release the context after
        every frame, so one renderer per size serves every thread (the orchestrator observes from its control
        thread, not the constructor's). Other backends get one renderer per thread and size.
        """
        key = (0 if self._shared_context else threading.get_ident(), size)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = self._mujoco.Renderer(self.model, size, size)
            self._renderers[key] = renderer
            self._scene_option = self._mujoco.MjvOption()
            self._scene_option.geomgroup[:] = 0
            self._scene_option.geomgroup[1:3] = 1  # visual meshes and furniture; never collision hulls
            self._scene_option.sitegroup[:] = 0  # robosuite's debug sites (grip cylinder etc.)
        return renderer

    @property
    def _shared_context(self) -> bool:
        """Whether mujoco renders through EGL (decided once, when mujoco was first imported)."""
        from mujoco import gl_context

        return getattr(gl_context, "GLContext", None).__module__ == "mujoco.egl"

    def _release_context(self) -> None:
        if not self._shared_context:
            return
        from mujoco import egl

        egl.EGL.eglMakeCurrent(egl.EGL_DISPLAY, egl.EGL.EGL_NO_SURFACE, egl.EGL.EGL_NO_SURFACE, egl.EGL.EGL_NO_CONTEXT)

    def render(self, camera: str, size: int | None = None) -> np.ndarray:
        """One frame of `camera`, `size` px square (default: the policy's camera_size)."""
        with self._lock:
            renderer = self._renderer(size or self.camera_size)
            try:
                renderer.update_scene(  # type: ignore[attr-defined]
                    self.data, camera=CAMERA_MJCF_NAMES[camera], scene_option=self._scene_option
                )
                return renderer.render()  # type: ignore[attr-defined]
            finally:
                self._release_context()

    def observe(self) -> Observation:
        with self._lock:
            if self._closed:
                raise RuntimeError("robot is closed")
            images: dict[str, np.ndarray] = {}
            operator_images: dict[str, np.ndarray] = {}
            operator = self.operator_camera_size
            if self.render_enabled:
                for cam in self.cameras:
                    images[cam] = self.render(cam)
                    if operator is not None:
                        operator_images[cam] = self.render(cam, operator)
            else:
                blank = np.zeros((self.camera_size, self.camera_size, 3), dtype=np.uint8)
                images = {cam: blank.copy() for cam in self.cameras}
                if operator is not None:
                    operator_blank = np.zeros((operator, operator, 3), dtype=np.uint8)
                    operator_images = {cam: operator_blank.copy() for cam in self.cameras}
            return Observation(
                images=images, operator_images=operator_images, state=self.state(), state_names=list(STATE_NAMES)
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for renderer in self._renderers.values():
                try:
                    renderer.close()  # type: ignore[attr-defined]
                except Exception as exc:  # a context owned by a finished thread may refuse; nothing else to free
                    logger.debug("renderer close failed: %s", exc)
            self._renderers.clear()
