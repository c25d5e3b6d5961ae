"""How much of the object to pick does each policy camera see when a pick starts? Pixels it covers, per camera.

Why: `benchmarks/lineup_response.py` shows System 1 moving the base along the furniture by the same amount with
its cameras as with black images, i.e. it does not find the object in its images. Before training longer, check
that the object can be seen at all. The robot stands at the stand-off of the furniture the object is on, arm
tucked, as a "go to" leaves it; each camera is rendered at the policy's size with the object in place and with
the object moved far away, and the pixels that change are the object's (its shadow too, if shadows were on).
Reported per camera: the share of placements where the object covers no pixel, and the median pixel count.

    .venv/bin/python benchmarks/object_visibility.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def object_pixels(robot, obj: str) -> dict[str, int]:
    """Pixels of each camera image that change when ``obj`` is taken out of the scene."""
    with_object = {name: image.astype(np.int16) for name, image in robot.observe().images.items()}
    address = robot._obj_qpos[obj]
    saved = robot.data.qpos[address : address + 3].copy()
    robot.data.qpos[address : address + 3] = (50.0, 50.0, -5.0)
    robot._mujoco.mj_forward(robot.model, robot.data)
    without = robot.observe().images
    robot.data.qpos[address : address + 3] = saved
    robot._mujoco.mj_forward(robot.model, robot.data)
    return {
        name: int(np.count_nonzero(np.abs(with_object[name] - without[name].astype(np.int16)).max(axis=-1) > 8))
        for name in with_object
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1000, 1010)))
    parser.add_argument("--camera-size", type=int, default=96)
    parser.add_argument(
        "--arm-aside",
        action="store_true",
        help="swing the tucked arm a quarter turn to the side (first joint +pi/2): how much is the arm's doing",
    )
    args = parser.parse_args()

    from standoff import place_at_standoff, settle

    from robots.registry import make_robot
    from robots.sim.expert import HOME_ARM
    from robots.sim.tasks import FURNITURE_OF, TASKS

    aside = HOME_ARM + np.array([np.pi / 2, 0, 0, 0, 0, 0, 0]) if args.arm_aside else None
    robot = make_robot("sim-kitchen", task=TASKS[0], seed=args.seeds[0], camera_size=args.camera_size)
    rows = []
    try:
        for task in TASKS:
            robot.set_task(task)
            for seed in args.seeds:
                robot.reset(seed)
                move = robot.spec.moves[0]
                place_at_standoff(robot, FURNITURE_OF[move.source])
                if aside is not None:
                    robot.data.qpos[robot._arm_qpos] = aside
                settle(robot, aside)
                rows.append({"task": task, "seed": seed, "object": move.obj, **object_pixels(robot, move.obj)})
    finally:
        robot.close()
    cameras = [name for name in rows[0] if name not in ("task", "seed", "object")]
    print("| camera | placements | object not visible | median object pixels | of |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for camera in cameras:
        counts = np.array([r[camera] for r in rows])
        print(
            f"| {camera} | {len(counts)} | {np.mean(counts == 0):.0%} | {np.median(counts):.0f} | "
            f"{args.camera_size * args.camera_size} |"
        )
    print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
