"""Does System 1 drive toward the object it is asked to pick? Its base target against the object's reach pose.

Why: a pick starts at a stand-off with the object somewhere along the furniture (its placement is randomized), so
the first thing "pick up the Y" must do is move the base sideways until Y is straight ahead at reach. Only the
cameras can say where Y is (nothing about it is in the state). `hearth eval --per-subtask` shows that picks fail
with the base 0.1-0.8 m off; this says whether the network reads the object's position at all. The robot is put
at the stand-off of the furniture Y stands on, shifted along it by a few offsets, arm tucked (as a "go to" leaves
it), and System 1 is asked for "pick up the Y" with several noise draws. The expert's line-up asks for the reach
pose itself, so an ideal policy's chunk-end base target is the reach pose. The needed move along the furniture is
the object's offset (cameras) minus the base's shift (state); `summary` fits the commanded move on both. The same with every image black is the control:
without the cameras the needed move cannot be known, so what remains is what the state and text alone explain.

    .venv/bin/python benchmarks/lineup_response.py --checkpoint checkpoints/sim-small
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHIFTS = (-0.3, 0.0, 0.3)  # m along the furniture from its stand-off


def lineup_queries(policy, robot, task: str, seed: int, draws: int, rng, arm: str = "tucked") -> list[dict]:
    """Needed and commanded base moves (along the furniture, toward it) for each shift, with and without images.

    ``arm`` "hover": the arm already at the line-up's hover posture (as the `--lineup` demonstrations start), where
    the wrist camera looks straight down ahead of the base whatever the shift."""
    from standoff import place_at_standoff, settle

    from agent.evaluation import BlindPolicy
    from robots.sim.expert import ScriptedExpert
    from robots.sim.kitchen import reach_pose
    from robots.sim.tasks import FURNITURE_OF

    robot.set_task(task)
    robot.reset(seed)
    move = robot.spec.moves[0]
    furniture = FURNITURE_OF[move.source]
    horizon, width = policy.config.action_horizon, policy.config.max_action_dim
    rows = []
    for shift in SHIFTS:
        along, toward = place_at_standoff(robot, furniture, shift)
        hover = None
        if arm == "hover":
            expert = ScriptedExpert(robot, seed=seed)
            expert.start_with_arm_at_hover()
            hover = expert.q_cmd
        settle(robot, hover)
        obs = robot.observe()
        pose = np.asarray(robot.base_pose()[:2])
        p = robot.object_position(move.obj)
        need = np.asarray(reach_pose(furniture, p[0], p[1])[:2]) - pose
        for images, asked in (("cameras", policy), ("blank", BlindPolicy(policy))):
            commanded = []
            for _ in range(draws):
                actions = asked.act(obs, f"pick up the {move.obj}", noise=rng.normal(size=(horizon, width))).actions
                commanded.append(np.asarray(actions[-1, 9:11], np.float64) - pose)
            mean = np.mean(commanded, axis=0)
            rows.append(
                {
                    "task": task,
                    "seed": seed,
                    "shift": shift,
                    "images": images,
                    "need_along": float(need @ along),
                    "need_toward": float(need @ toward),
                    "commanded_along": float(mean @ along),
                    "commanded_toward": float(mean @ toward),
                }
            )
    return rows


def summary(rows: list[dict], images: str) -> dict:
    """How the commanded move along the furniture depends on where the object is and where the base stands.

    The needed move is ``object - shift`` (both along the furniture, from its stand-off): the object's offset only
    the cameras can see, the shift the state measures. A least-squares fit ``commanded = a * object + b * shift + c``
    separates the two: an ideal policy has a = 1 and b = -1; one that ignores its cameras has a = 0.
    """
    picked = [r for r in rows if r["images"] == images]
    need = np.array([r["need_along"] for r in picked])
    got = np.array([r["commanded_along"] for r in picked])
    shift = np.array([r["shift"] for r in picked])
    obj = need + shift
    toward_err = np.array([abs(r["commanded_toward"] - r["need_toward"]) for r in picked])
    design = np.stack([obj, shift, np.ones_like(obj)], axis=1)
    (from_object, from_shift, _), *_ = np.linalg.lstsq(design, got, rcond=None)
    correlation = float(np.corrcoef(need, got)[0, 1]) if np.std(got) > 1e-9 else 0.0
    return {
        "images": images,
        "queries": len(picked),
        "from_object": float(from_object),
        "from_shift": float(from_shift),
        "correlation": correlation,
        "along_abs_error": float(np.mean(np.abs(got - need))),
        "toward_abs_error": float(np.mean(toward_err)),
        "need_along_abs": float(np.mean(np.abs(need))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002])
    parser.add_argument("--draws", type=int, default=3, help="noise draws per placement")
    parser.add_argument(
        "--arm", choices=("tucked", "hover"), default="tucked", help="arm posture: as a go-to leaves it, or hovering"
    )
    args = parser.parse_args()

    from standoff import FIRST_PICK_TASKS

    from policy.inference import Pi05Policy
    from robots.registry import make_robot

    policy = Pi05Policy.from_checkpoint(args.checkpoint, device="cpu")
    robot = make_robot(
        "sim-kitchen", task=FIRST_PICK_TASKS[0], seed=args.seeds[0], cameras=tuple(policy.metadata["camera_names"])
    )
    rng = np.random.default_rng(0)
    rows: list[dict] = []
    try:
        for task in FIRST_PICK_TASKS:
            for seed in args.seeds:
                rows.extend(lineup_queries(policy, robot, task, seed, args.draws, rng, args.arm))
    finally:
        robot.close()
    results = [summary(rows, "cameras"), summary(rows, "blank")]
    print(
        "| images | placements | per m of object offset (ideal +1) | per m of base shift (ideal -1) | correlation "
        "| along error (m) | toward error (m) | mean needed move (m) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['images']} | {r['queries']} | {r['from_object']:+.2f} | {r['from_shift']:+.2f} | {r['correlation']:+.2f} | "
            f"{r['along_abs_error']:.3f} | {r['toward_abs_error']:.3f} | {r['need_along_abs']:.3f} |"
        )
    print(json.dumps({"checkpoint": args.checkpoint, "summary": results, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
