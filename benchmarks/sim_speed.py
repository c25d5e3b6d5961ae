"""Control steps per second of the sim-kitchen robot, with and without rendering.

Runs the scripted expert (so the robot really drives, grasps and carries) and times ``act`` alone and
``act`` + ``observe`` at 96, 128 and 224 px for 2 cameras (head, wrist) and 3 cameras (+ third).
Usage: MUJOCO_GL=egl .venv/bin/python benchmarks/sim_speed.py [--ticks 200]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")


def measure(robot, ticks: int, render: bool, seed: int = 0) -> tuple[float, float]:
    """(steps per second of wall time, CPU milliseconds per step incl. llvmpipe's render threads)."""
    from robots.sim.expert import ScriptedExpert

    robot.reset(seed)
    expert = ScriptedExpert(robot, seed=seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(ticks):
        action, _ = expert.act()
        robot.act(action)
        if render:
            robot.observe()
        if expert.done:
            robot.reset(seed)
            expert = ScriptedExpert(robot, seed=seed)
    return ticks / (time.perf_counter() - start), 1000.0 * (time.process_time() - cpu_start) / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--task", default="put the can in the sink")
    args = parser.parse_args()

    from robots.sim.kitchen import SimKitchen

    blind = SimKitchen(task=args.task, render=False)
    measure(blind, 20, render=False)  # warm-up
    print(f"load average before: {os.getloadavg()[0]:.1f} (2-core machine shared with other jobs)")
    rate, cpu = measure(blind, args.ticks, render=False)
    blind.close()
    print(f"no rendering:        {rate:7.1f} steps/s  wall {1000.0 / rate:7.2f} ms/step  cpu {cpu:7.2f} ms/step")
    for cameras in (("head", "wrist"), ("head", "wrist", "third")):
        for size in (96, 128, 224):
            robot = SimKitchen(task=args.task, camera_size=size, cameras=cameras)
            measure(robot, 10, render=True)  # warm-up (renderer creation, texture upload)
            rate, cpu = measure(robot, args.ticks, render=True)
            robot.close()
            print(
                f"{len(cameras)} cameras @ {size:3d}px: {rate:7.1f} steps/s  wall {1000.0 / rate:7.2f} ms/step  "
                f"cpu {cpu:7.2f} ms/step"
            )


if __name__ == "__main__":
    main()
