"""The simulated household: a two-room MJCF scene around robosuite's PandaOmron mobile manipulator.

robosuite supplies the robot (Omron holonomic base + torso lift + 7-DoF Panda + Panda gripper) and the household
object meshes; the furniture is our own box MJCF because boxes collide cheaply and predictably, and the layout
is fixed so the model compiles once per robot (only object and robot poses change per seed).

Mechanics we chose for reliability (they differ from robosuite's own controllers on purpose):
- the Panda's torque motors are replaced by MuJoCo position servos with gravity compensation, so an absolute
  joint target is tracked by the physics engine itself without per-substep Python;
- the torso motor is replaced by a position servo;
- the base keeps robosuite's velocity servos (world-frame x/y slides + yaw hinge);
- every movable object has a disabled weld to the gripper: the "grasp assist" (see ``SimKitchen``) switches it
  on when the closing fingers surround an object, because physics-only grasping of mesh objects with a position
  servoed gripper was not reliable enough for a >= 95 % expert.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Movable household objects: robosuite asset class name -> our object name.
OBJECT_CLASSES: dict[str, str] = {
    "can": "CanObject",
    "milk": "MilkObject",
    "bottle": "BottleObject",
    "lemon": "LemonObject",
    "bread": "BreadObject",
    "cereal": "CerealObject",
}

# Graspable objects: robosuite's meshes plus our own simple cup (robosuite ships no cup).
GRASPABLE: list[str] = [*OBJECT_CLASSES, "cup"]

ARM_JOINTS = [f"robot0_joint{i}" for i in range(1, 8)]
BASE_JOINTS = ["mobilebase0_joint_mobile_forward", "mobilebase0_joint_mobile_side", "mobilebase0_joint_mobile_yaw"]
TORSO_JOINT = "mobilebase0_joint_torso_height"
FINGER_JOINTS = ["gripper0_right_finger_joint1", "gripper0_right_finger_joint2"]
GRIP_SITE = "gripper0_right_grip_site"
EEF_BODY = "gripper0_right_eef"

# Position-servo gains for the arm (N m / rad and N m s / rad): stiff enough to track a 20 Hz target stream.
ARM_KP = [1500.0, 1500.0, 1200.0, 1200.0, 600.0, 400.0, 200.0]
ARM_KV = [120.0, 120.0, 90.0, 90.0, 40.0, 25.0, 12.0]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box given by its min/max corners (world frame, metres)."""

    x0: float
    x1: float
    y0: float
    y1: float
    z0: float
    z1: float

    @property
    def center(self) -> tuple[float, float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2, (self.z0 + self.z1) / 2)

    @property
    def half(self) -> tuple[float, float, float]:
        return ((self.x1 - self.x0) / 2, (self.y1 - self.y0) / 2, (self.z1 - self.z0) / 2)

    def contains_xy(self, x: float, y: float, margin: float = 0.0) -> bool:
        return self.x0 + margin <= x <= self.x1 - margin and self.y0 + margin <= y <= self.y1 - margin


@dataclass(frozen=True)
class Surface:
    """A place objects rest on or go into: its footprint (where things may be placed) and its height."""

    name: str
    area: Box  # z0..z1 = the resting height band of an object's bottom
    height: float  # z of the support surface
    facing_yaw: float  # yaw the robot takes to work at it
    room: str


# ---- Layout (metres). Kitchen east of the divider (x > -0.9), dining room west of it. ----
COUNTER = Box(1.30, 1.90, -1.40, 0.20, 0.0, 0.90)
SINK = Box(1.40, 1.72, -0.95, -0.45, 0.72, 0.90)  # the basin cavity cut into the counter top
SHELF = Box(-0.10, 0.80, 1.45, 1.85, 0.0, 0.80)
TABLE = Box(-2.60, -1.80, -0.65, 0.65, 0.0, 0.75)
DIVIDER_X = (-1.00, -0.90)
DOOR_HALF_WIDTH = 1.0
ROOM_BOUNDS = Box(-3.2, 2.1, -2.1, 2.1, 0.0, 1.3)

SURFACES: dict[str, Surface] = {
    "table": Surface("table", Box(-2.05, -1.86, -0.45, 0.45, 0.75, 0.80), 0.75, 3.14159265, "dining room"),
    "counter": Surface("counter", Box(1.36, 1.55, -0.30, 0.12, 0.90, 0.95), 0.90, 0.0, "kitchen"),
    "sink": Surface("sink", Box(1.46, 1.62, -0.82, -0.58, 0.72, 0.90), 0.72, 0.0, "kitchen"),
    "shelf": Surface("shelf", Box(0.05, 0.65, 1.51, 1.62, 0.80, 0.85), 0.80, 1.5707963, "kitchen"),
}
DOORWAY = (-0.95, 0.0)


def _box_geom(parent: ET.Element, name: str, box: Box, rgba: str, collide: bool = True) -> None:
    (cx, cy, cz), (hx, hy, hz) = box.center, box.half
    attrs = {
        "name": name,
        "type": "box",
        "pos": f"{cx:.4f} {cy:.4f} {cz:.4f}",
        "size": f"{hx:.4f} {hy:.4f} {hz:.4f}",
        "rgba": rgba,
        "friction": "1 0.005 0.0001",
        "group": "2",  # group 0 holds robosuite's (hidden) collision meshes; furniture both collides and shows
    }
    if not collide:
        attrs.update({"contype": "0", "conaffinity": "0", "group": "1"})
    ET.SubElement(parent, "geom", attrs)


def _furniture(worldbody: ET.Element) -> None:
    """Counter with sink, shelf, dining table, walls and floor: plain boxes for cheap, stable contacts."""
    wood, white, steel, wall = "0.55 0.38 0.22 1", "0.92 0.92 0.9 1", "0.6 0.62 0.65 1", "0.85 0.83 0.78 1"
    house = ET.SubElement(worldbody, "body", {"name": "house"})
    ET.SubElement(
        house,
        "geom",
        {
            "name": "floor",
            "type": "plane",
            "size": "4 3 0.05",
            "pos": "-0.5 0 0",
            "material": "floor_mat",
            "group": "2",
        },
    )
    # counter: cabinet body, then the top slab around the sink cavity, then the basin.
    c, s = COUNTER, SINK
    _box_geom(house, "counter_body", Box(c.x0, c.x1, c.y0, c.y1, 0.0, 0.70), white)
    top = 0.70
    _box_geom(house, "counter_top_front", Box(c.x0, s.x0, c.y0, c.y1, top, c.z1), wood)
    _box_geom(house, "counter_top_back", Box(s.x1, c.x1, c.y0, c.y1, top, c.z1), wood)
    _box_geom(house, "counter_top_left", Box(s.x0, s.x1, c.y0, s.y0, top, c.z1), wood)
    _box_geom(house, "counter_top_right", Box(s.x0, s.x1, s.y1, c.y1, top, c.z1), wood)
    _box_geom(house, "sink_basin", Box(s.x0, s.x1, s.y0, s.y1, top, s.z0), steel)
    # shelf: a cabinet whose top is the shelf board, with a visual middle board.
    sh = SHELF
    _box_geom(house, "shelf_body", Box(sh.x0, sh.x1, sh.y0, sh.y1, 0.0, sh.z1 - 0.03), "0.35 0.45 0.6 1")
    _box_geom(house, "shelf_board", Box(sh.x0, sh.x1, sh.y0, sh.y1, sh.z1 - 0.03, sh.z1), wood)
    _box_geom(house, "shelf_upper", Box(sh.x0, sh.x1, sh.y1 - 0.04, sh.y1, sh.z1, sh.z1 + 0.5), wood)
    # dining table: top and legs.
    t = TABLE
    _box_geom(house, "table_top", Box(t.x0, t.x1, t.y0, t.y1, t.z1 - 0.04, t.z1), wood)
    for i, (lx, ly) in enumerate([(t.x0, t.y0), (t.x0, t.y1 - 0.05), (t.x1 - 0.05, t.y0), (t.x1 - 0.05, t.y1 - 0.05)]):
        _box_geom(house, f"table_leg{i}", Box(lx, lx + 0.05, ly, ly + 0.05, 0.0, t.z1 - 0.04), wood)
    # walls: outer walls and the divider between kitchen and dining room with a doorway around y = 0.
    r, h = ROOM_BOUNDS, 1.2
    _box_geom(house, "wall_east", Box(r.x1, r.x1 + 0.1, r.y0, r.y1, 0, h), wall)
    _box_geom(house, "wall_west", Box(r.x0 - 0.1, r.x0, r.y0, r.y1, 0, h), wall)
    _box_geom(house, "wall_north", Box(r.x0, r.x1, r.y1, r.y1 + 0.1, 0, h), wall)
    _box_geom(house, "wall_south", Box(r.x0, r.x1, r.y0 - 0.1, r.y0, 0, h), wall)
    dx0, dx1 = DIVIDER_X
    _box_geom(house, "divider_south", Box(dx0, dx1, r.y0, -DOOR_HALF_WIDTH, 0, h), wall)
    _box_geom(house, "divider_north", Box(dx0, dx1, DOOR_HALF_WIDTH, r.y1, 0, h), wall)


def _bowl(worldbody: ET.Element) -> None:
    """A shallow bowl (free body) made of a disc and eight wall boxes: robosuite ships no bowl mesh."""
    body = ET.SubElement(worldbody, "body", {"name": "bowl_main", "pos": "-2.2 0 0.8"})
    ET.SubElement(body, "freejoint", {"name": "bowl_joint0"})
    # explicit inertia: robosuite's compiler only counts group-0 geoms, and ours are in the visible group 2
    ET.SubElement(body, "inertial", {"pos": "0 0 0.02", "mass": "0.5", "diaginertia": "0.002 0.002 0.003"})
    color = "0.85 0.3 0.25 1"
    ET.SubElement(
        body,
        "geom",
        {
            "name": "bowl_bottom",
            "type": "cylinder",
            "size": "0.07 0.006",
            "pos": "0 0 0.006",
            "rgba": color,
            "mass": "0.3",
            "friction": "1 0.005 0.0001",
            "group": "2",
        },
    )
    import math

    for i in range(8):
        a = i * math.pi / 4
        ET.SubElement(
            body,
            "geom",
            {
                "name": f"bowl_wall{i}",
                "type": "box",
                "size": "0.006 0.042 0.03",
                "pos": f"{0.1 * math.cos(a):.4f} {0.1 * math.sin(a):.4f} 0.03",
                "euler": f"0 0 {a:.4f}",
                "rgba": color,
                "mass": "0.05",
                "friction": "1 0.005 0.0001",
                "group": "2",
            },
        )


def _cup(worldbody: ET.Element) -> None:
    """A cup: a collision cylinder (group 0, which also gives it mass) with a visible body and rim in group 2."""
    body = ET.SubElement(worldbody, "body", {"name": "cup_main", "pos": "0 0 -5"})
    ET.SubElement(body, "freejoint", {"name": "cup_joint0"})
    ET.SubElement(
        body,
        "geom",
        {
            "name": "cup_collision",
            "type": "cylinder",
            "size": "0.032 0.045",
            "group": "0",
            "density": "300",
            "friction": "1 0.005 0.0001",
            "condim": "4",
            "rgba": "0 0 0 0",
        },
    )
    common = {"contype": "0", "conaffinity": "0", "group": "2"}
    ET.SubElement(
        body,
        "geom",
        {**common, "name": "cup_visual", "type": "cylinder", "size": "0.032 0.045", "rgba": "0.2 0.45 0.85 1"},
    )
    ET.SubElement(
        body,
        "geom",
        {
            **common,
            "name": "cup_inside",
            "type": "cylinder",
            "size": "0.026 0.001",
            "pos": "0 0 0.0455",
            "rgba": "0.08 0.08 0.1 1",
        },
    )
    ET.SubElement(
        body,
        "geom",
        {
            **common,
            "name": "cup_handle",
            "type": "box",
            "size": "0.006 0.012 0.025",
            "pos": "0.038 0 0.005",
            "rgba": "0.2 0.45 0.85 1",
        },
    )


def _cameras(root: ET.Element, camera_size: int) -> None:
    """Head camera on the torso (moves with base and lift) and a fixed 'third' overview camera."""
    support = root.find(".//body[@name='mobilebase0_support']")
    assert support is not None, "robosuite PandaOmron model changed: no mobilebase0_support body"
    # A mast camera high above the base's centre line, pitched 63 degrees down: it sees the whole edge of the
    # furniture in front (both ends of the table) with the tucked arm a column over its middle (about a fifth of the
    # image; it can hide the object, benchmarks/object_visibility.py), instead of the
    # arm filling the view (the old camera sat beside the arm at shoulder height).
    ET.SubElement(
        support,
        "camera",
        {"name": "head", "pos": "-0.25 0 1.55", "xyaxes": "0 -1 0 0.891 0 0.454", "fovy": "60"},
    )
    worldbody = root.find("worldbody")
    assert worldbody is not None
    ET.SubElement(
        worldbody,
        "camera",
        {"name": "third", "pos": "-0.4 -3.0 3.2", "xyaxes": "1 0 0 0 0.72 0.69", "fovy": "70"},
    )


def _replace_arm_and_torso_actuators(root: ET.Element) -> None:
    """Swap robosuite's torque motors for position servos so absolute targets are tracked inside MuJoCo."""
    actuator = root.find("actuator")
    assert actuator is not None
    for motor in list(actuator):
        joint = motor.get("joint", "")
        if joint in ARM_JOINTS or joint == TORSO_JOINT:
            actuator.remove(motor)
    for name, kp, kv in zip(ARM_JOINTS, ARM_KP, ARM_KV, strict=True):
        ET.SubElement(
            actuator,
            "position",
            {
                "name": f"{name}_pos",
                "joint": name,
                "kp": str(kp),
                "kv": str(kv),
                "forcerange": "-200 200",
                "forcelimited": "true",
                "ctrllimited": "false",
            },
        )
    ET.SubElement(
        actuator,
        "position",
        {
            "name": "torso_pos",
            "joint": TORSO_JOINT,
            "kp": "40000",
            "kv": "3000",
            "forcerange": "-8000 8000",
            "forcelimited": "true",
            "ctrllimited": "true",
            "ctrlrange": "0 0.34",
        },
    )
    # Gravity compensation on every arm and gripper body: the servos then only fight inertia, not weight.
    for body in root.iter("body"):
        name = body.get("name", "")
        if name.startswith("robot0_link") or name.startswith("gripper0_"):
            body.set("gravcomp", "1")


def _stiffen_base(root: ET.Element) -> None:
    """Make the base velocity servos track commands closely (robosuite's 600 N limit lags by ~1 s)."""
    for vel in root.iter("velocity"):
        if "mobile" in vel.get("joint", ""):
            vel.set("kv", "30000" if "yaw" not in vel.get("joint", "") else "8000")
            vel.set("forcerange", "-30000 30000")
    for joint in root.iter("joint"):
        if "joint_mobile" in joint.get("name", ""):
            joint.set("frictionloss", "0")
            joint.set("damping", "0")


ROBOT_PREFIXES = ("robot0_", "mobilebase0_", "gripper0_")


def _low_poly_robot(root: ET.Element) -> None:
    """Render the robot from its collision geometry (~17k triangles) instead of robosuite's visual meshes (~260k).

    Software rendering (llvmpipe) is vertex-bound here: the detailed meshes cost ~150 ms per camera frame, the
    collision shapes a small fraction of that. Collision geoms stay as they are (group 0 also carries their mass);
    each gets a visible, non-colliding copy in group 2; the detailed meshes are dropped (faster compile too).
    """
    for body in root.iter("body"):
        name = body.get("name", "")
        if not name.startswith(ROBOT_PREFIXES):
            continue
        if name.startswith("mobilebase0_"):
            color = "0.22 0.22 0.25 1"
        elif "finger" in name or name.startswith("gripper0_"):
            color = "0.35 0.35 0.38 1"
        else:
            color = "0.93 0.93 0.93 1"
        for geom in list(body.findall("geom")):
            visual_only = geom.get("contype") == "0" and geom.get("conaffinity") == "0"
            if visual_only or geom.get("group") == "1":
                body.remove(geom)
                continue
            copy = ET.SubElement(body, "geom", {k: v for k, v in geom.attrib.items() if k not in ("name", "material")})
            copy.attrib.update({"contype": "0", "conaffinity": "0", "group": "2", "rgba": color, "mass": "0"})
            for k in ("solref", "solimp", "friction", "condim", "density"):
                copy.attrib.pop(k, None)


def _drop_unused_meshes(root: ET.Element) -> None:
    used = {g.get("mesh") for g in root.iter("geom") if g.get("mesh")}
    asset = root.find("asset")
    assert asset is not None
    for mesh in list(asset.findall("mesh")):
        if mesh.get("name") not in used:
            asset.remove(mesh)


def _visual_settings(root: ET.Element, camera_size: int) -> None:
    """No shadows and no multisampling: ~26 ms -> < 1 ms per frame with software EGL (measured, issue 5)."""
    visual = root.find("visual")
    if visual is None:
        visual = ET.SubElement(root, "visual")
    for child in list(visual):
        if child.tag in ("quality", "global"):
            visual.remove(child)
    ET.SubElement(visual, "quality", {"shadowsize": "0", "offsamples": "0"})
    size = max(640, camera_size)
    ET.SubElement(visual, "global", {"offwidth": str(size), "offheight": str(size)})
    headlight = visual.find("headlight")
    if headlight is None:
        ET.SubElement(visual, "headlight", {"ambient": "0.45 0.45 0.45", "diffuse": "0.5 0.5 0.5", "specular": "0 0 0"})
    asset = root.find("asset")
    assert asset is not None
    # robosuite's bottle declares its glass texture as a skybox, which would paint the whole sky; make it a cube map.
    for texture in asset.iter("texture"):
        if texture.get("type") == "skybox":
            texture.set("type", "cube")
    ET.SubElement(
        asset,
        "texture",
        {
            "name": "floor_tex",
            "type": "2d",
            "builtin": "checker",
            "rgb1": "0.72 0.7 0.66",
            "rgb2": "0.64 0.62 0.58",
            "width": "64",
            "height": "64",
        },
    )
    ET.SubElement(asset, "material", {"name": "floor_mat", "texture": "floor_tex", "texrepeat": "8 8"})
    ET.SubElement(
        asset,
        "texture",
        {
            "name": "sky",
            "type": "skybox",
            "builtin": "gradient",
            "rgb1": "0.9 0.9 0.95",
            "rgb2": "0.6 0.65 0.7",
            "width": "32",
            "height": "32",
        },
    )


def _physics_options(root: ET.Element, timestep: float) -> None:
    option = root.find("option")
    if option is None:
        option = ET.SubElement(root, "option")
    option.set("timestep", str(timestep))
    option.set("integrator", "implicitfast")
    size = root.find("size")
    if size is not None:
        root.remove(size)


def _grasp_welds(root: ET.Element, objects: list[str]) -> None:
    equality = root.find("equality")
    if equality is None:
        equality = ET.SubElement(root, "equality")
    for name in objects:
        ET.SubElement(
            equality,
            "weld",
            {
                "name": f"grasp_{name}",
                "body1": EEF_BODY,
                "body2": f"{name}_main",
                "active": "false",
                "solref": "0.01 1",
                "solimp": "0.99 0.999 0.001",
            },
        )


def build_scene_xml(camera_size: int = 96, timestep: float = 0.005, low_poly: bool = True) -> str:
    """Compose robosuite's robot and objects with our furniture into one MJCF string."""
    import robosuite.models.objects as rs_objects
    from robosuite.models.bases import robot_base_factory
    from robosuite.models.grippers import gripper_factory
    from robosuite.models.robots import create_robot
    from robosuite.models.world import MujocoWorldBase

    world = MujocoWorldBase()
    robot = create_robot("PandaOmron", idn=0)
    robot.add_base(base=robot_base_factory(robot.default_base, idn=0))
    robot.add_gripper(gripper_factory(robot.default_gripper["right"], idn="0_right"), robot.eef_name["right"])
    world.merge(robot)
    for name, cls_name in OBJECT_CLASSES.items():
        obj = getattr(rs_objects, cls_name)(name=name)
        world.merge_assets(obj)
        body = obj.get_obj()
        body.set("pos", "0 0 -5")
        world.worldbody.append(body)

    root = world.root
    worldbody = root.find("worldbody")
    assert worldbody is not None
    # robosuite's base xml carries cameras meant for its tabletop arenas; we define our own.
    for cam in list(worldbody.findall("camera")):
        worldbody.remove(cam)
    _furniture(worldbody)
    _bowl(worldbody)
    _cup(worldbody)
    ET.SubElement(
        worldbody,
        "light",
        {
            "name": "ceiling",
            "pos": "0 0 3",
            "dir": "0 0 -1",
            "directional": "true",
            "diffuse": "0.6 0.6 0.6",
            "castshadow": "false",
        },
    )
    _cameras(root, camera_size)
    _replace_arm_and_torso_actuators(root)
    _stiffen_base(root)
    if low_poly:
        _low_poly_robot(root)
        _drop_unused_meshes(root)
    _visual_settings(root, camera_size)
    _physics_options(root, timestep)
    _grasp_welds(root, [*GRASPABLE, "bowl"])
    return ET.tostring(root, encoding="unicode")
