"""Does System 1 hold the stand-off heading while it lines up for a pick? Its heading target against the expert's.

Why: a pick's arm motion is fixed relative to the base, so a heading target 0.1 rad off turns the reach point
4.5 cm sideways at 0.45 m, past the grasp tolerance, however well the base's x and y line up. The expert holds
the stand-off heading (π at the table, 0 at the counter, π/2 at the shelf) through the line-up. The noise-free
expert drives each task; at every ``--every`` ticks of a "pick up" subtask the policy is asked for a chunk from
the same frame with several noise draws, and the last action's heading target is compared with the expert's.
Reported per furniture: the mean signed error (a bias) and the mean absolute error, in rad.

    .venv/bin/python benchmarks/pick_heading.py --checkpoint checkpoints/sim-small
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

TASKS = (
    "put the can in the sink",
    "put the milk on the shelf",
    "put the fruit in the bowl",
    "bring the bread to the table",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000])
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--draws", type=int, default=4)
    args = parser.parse_args()

    from open_loop_error import expert_rollout

    from policy.inference import Pi05Policy
    from robots.registry import make_robot
    from robots.sim.kitchen import FACING, wrap_angle

    policy = Pi05Policy.from_checkpoint(args.checkpoint, device="cpu")
    horizon, width = policy.config.action_horizon, policy.config.max_action_dim
    robot = make_robot("sim-kitchen", task=TASKS[0], seed=args.seeds[0], cameras=tuple(policy.metadata["camera_names"]))
    errors: dict[str, list[float]] = defaultdict(list)
    rng = np.random.default_rng(0)
    try:
        for task in TASKS:
            for seed in args.seeds:
                queries, actions = expert_rollout(robot, task, seed, args.every)
                for tick, obs, label in queries:
                    last = min(tick + horizon - 1, len(actions) - 1)
                    if not label.startswith("pick up") or not all(
                        q_label == label for q_tick, _, q_label in queries if tick <= q_tick <= last
                    ):
                        continue  # only chunks that stay inside the pick
                    want = float(actions[last, 11])
                    where = min(FACING, key=lambda name: abs(wrap_angle(FACING[name] - want)))  # the stand-off's
                    for _ in range(args.draws):
                        chunk = policy.act(obs, label, noise=rng.normal(size=(horizon, width))).actions
                        errors[where].append(float(wrap_angle(float(chunk[-1, 11]) - want)))
    finally:
        robot.close()
    print("| furniture | samples | bias (rad) | mean absolute error (rad) |")
    print("| --- | ---: | ---: | ---: |")
    for where, e in sorted(errors.items()):
        print(f"| {where} | {len(e)} | {np.mean(e):+.3f} | {np.mean(np.abs(e)):.3f} |")
    summary = {w: {"bias": float(np.mean(e)), "mae": float(np.mean(np.abs(e))), "n": len(e)} for w, e in errors.items()}
    print(json.dumps({"checkpoint": args.checkpoint, "seeds": args.seeds, "per_furniture": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
