"""Scripted-expert success rate per sim-kitchen task over many seeds, with and without recovery noise.

Usage: MUJOCO_GL=egl .venv/bin/python benchmarks/expert_success.py [--seeds 20] [--noise 0 1]
Prints success rate, mean/max episode length (control ticks at 20 Hz) and wall time per task.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--max-ticks", type=int, default=1200)
    parser.add_argument("--tasks", type=int, nargs="*", default=None, help="task indices (default: all)")
    args = parser.parse_args()

    from robots.sim.expert import ScriptedExpert
    from robots.sim.kitchen import SimKitchen
    from robots.sim.tasks import TASKS

    robot = SimKitchen(render=False)
    for noise in args.noise:
        for task in [TASKS[i] for i in args.tasks] if args.tasks else TASKS:
            robot.set_task(task)
            ok, lengths, failures = 0, [], []
            start = time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                robot.reset(seed)
                expert = ScriptedExpert(robot, noise=noise, seed=seed)
                ticks = 0
                while not expert.done and ticks < args.max_ticks:
                    action, _ = expert.act()
                    robot.act(action)
                    ticks += 1
                success = robot.task_success()
                ok += int(success)
                lengths.append(ticks)
                if not success:
                    failures.append(seed)
            wall = time.perf_counter() - start
            print(
                f"noise={noise:.1f}  {task:32s} success {ok:3d}/{args.seeds} ({100.0 * ok / args.seeds:5.1f} %)  "
                f"ticks mean {sum(lengths) / len(lengths):5.0f} max {max(lengths):5d}  "
                f"{wall / args.seeds:5.2f} s/episode  failed seeds {failures}",
                flush=True,
            )
    robot.close()


if __name__ == "__main__":
    main()
