"""Open-loop action error of a checkpoint against the scripted expert, per subtask type and action group.

Why: closed-loop success says *that* a policy fails, not *where*. Here the noise-free expert drives a seed while
System 1 is asked, every `--every` ticks, for a chunk from the same observation with the expert's own subtask
text; each predicted action is compared with the expert's action at the same future tick. Errors are reported in
robot units (rad for the arm, m and rad for the base) so they can be held against the task's tolerances (the
grasp takes hold within ~2-3.5 cm). This is the measurement behind the sim-small model card's "what the numbers say".

    .venv/bin/python benchmarks/open_loop_error.py --checkpoint checkpoints/sim-small --seeds 1000 1001
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

import numpy as np

GROUPS = {"arm_rad": slice(0, 7), "gripper": slice(7, 8), "base_xy_m": slice(9, 11), "base_yaw_rad": slice(11, 12)}


def expert_rollout(robot, task: str, seed: int, every: int, max_ticks: int = 2000):
    """(observations at query ticks, their labels, the expert's clean actions for every tick)."""
    from robots.sim.expert import ScriptedExpert

    robot.set_task(task)
    obs = robot.reset(seed)
    expert = ScriptedExpert(robot, noise=0.0, seed=seed)
    queries, actions = [], []
    for tick in range(max_ticks):
        action, label = expert.act()
        if expert.done:
            break
        if tick % every == 0:
            queries.append((tick, obs, label))
        actions.append(action)
        robot.act(action)
        obs = robot.observe()
    return queries, np.asarray(actions)


def chunk_errors(predicted: np.ndarray, expert: np.ndarray, steps: int) -> dict[str, float]:
    """Mean absolute error per group over the first `steps` steps both cover (yaw wrapped, xy as a distance)."""
    n = min(len(predicted), len(expert), steps)
    p, e = predicted[:n], expert[:n]
    xy = np.linalg.norm(p[:, 9:11] - e[:, 9:11], axis=1)
    yaw = np.abs((p[:, 11] - e[:, 11] + math.pi) % (2 * math.pi) - math.pi)
    return {
        "arm_rad": float(np.abs(p[:, :7] - e[:, :7]).mean()),
        "gripper": float(np.abs(p[:, 7] - e[:, 7]).mean()),
        "base_xy_m": float(xy.mean()),
        "base_yaw_rad": float(yaw.mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--task", action="append", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000])
    parser.add_argument("--every", type=int, default=10, help="ask the policy every this many ticks")
    parser.add_argument("--camera-size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=10, help="compare the first this many actions of each chunk")
    args = parser.parse_args()

    from agent.subtask_eval import subtask_kind
    from policy.inference import Pi05Policy
    from robots.registry import make_robot
    from robots.sim.tasks import TASKS

    policy = Pi05Policy.from_checkpoint(args.checkpoint, device="cpu")
    tasks = args.task or list(TASKS)
    robot = make_robot(
        "sim-kitchen",
        task=tasks[0],
        seed=args.seeds[0],
        camera_size=args.camera_size,
        cameras=tuple(policy.metadata["camera_names"]),
    )
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    try:
        for task in tasks:
            for seed in args.seeds:
                queries, actions = expert_rollout(robot, task, seed, args.every)
                for tick, obs, label in queries:
                    chunk = policy.act(obs, label).actions
                    for group, value in chunk_errors(chunk, actions[tick:], args.steps).items():
                        sums[subtask_kind(label)][group].append(value)
    finally:
        robot.close()
    table = {
        kind: {group: float(np.mean(v)) for group, v in groups.items()} | {"queries": len(groups["arm_rad"])}
        for kind, groups in sorted(sums.items())
    }
    print("| subtask | queries | " + " | ".join(GROUPS) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in GROUPS) + " |")
    for kind, row in table.items():
        print(f"| {kind} | {row['queries']} | " + " | ".join(f"{row[g]:.3f}" for g in GROUPS) + " |")
    print(json.dumps({"checkpoint": args.checkpoint, "seeds": args.seeds, "tasks": tasks, "errors": table}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
