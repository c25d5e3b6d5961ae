"""Does System 1 turn the right way? Its heading command at each stand-off against the heading error it stands at.

Why: "go to the X" ends at X's stand-off *facing* X, and a policy that reads its odometry must turn left when it
faces right of the goal and right when it faces left of it. Open-loop error against the expert cannot show this
(the expert rarely stands at a wrong heading, so the policy is never asked there); closed loop it shows up as a
robot that reaches the stand-off and then stays turned away. Here the robot is placed exactly at each stand-off
with a heading error e from a grid, the arm tucked, and System 1 is asked for "go to the X" with several noise
draws. A policy that uses its heading turns by about -clip(e, +-MAX_BASE_YAW_RATE * chunk time); one that ignores it turns
the same way whatever e is. Reported per furniture: the mean commanded turn per e, the share of |e| >= 0.2 rad
where it turns toward the goal, and the correlation between the commanded and the ideal turn.

    .venv/bin/python benchmarks/heading_response.py --checkpoint checkpoints/sim-small
"""

from __future__ import annotations

import argparse
import json

import numpy as np

ERRORS = (-2.5, -1.5, -0.8, -0.4, -0.2, 0.2, 0.4, 0.8, 1.5, 2.5)


def heading_response(policy, robot, furniture: str, draws: int, seed: int) -> dict:
    from robots.sim.expert import HOME_ARM
    from robots.sim.kitchen import MAX_BASE_YAW_RATE, standoff_pose, wrap_angle

    sx, sy, syaw = standoff_pose(furniture)
    horizon = policy.config.action_horizon
    chunk_s = horizon / float(policy.metadata.get("control_hz") or 20.0)
    rng = np.random.default_rng(seed)
    commanded, ideal, rows = [], [], []
    for error in ERRORS:
        robot._set_base_pose(sx, sy, syaw + error)
        hold = np.concatenate([HOME_ARM, [0.0], robot.state()[8:9], [sx, sy, robot.state()[11]]]).astype(np.float32)
        for _ in range(5):  # let the controller settle on the new pose
            robot.act(hold)
        obs = robot.observe()
        yaw = float(obs.state[11])
        turns = []
        for _ in range(draws):
            noise = rng.normal(size=(horizon, policy.config.max_action_dim))
            actions = policy.act(obs, f"go to the {furniture}", noise=noise).actions
            turns.append(float(wrap_angle(actions[-1, 11] - yaw)))
        want = -float(np.clip(error, -MAX_BASE_YAW_RATE * chunk_s, MAX_BASE_YAW_RATE * chunk_s))
        commanded.append(float(np.mean(turns)))
        ideal.append(want)
        rows.append({"heading_error": error, "commanded_turn": round(commanded[-1], 3), "ideal_turn": round(want, 3)})
    commanded_a, ideal_a = np.asarray(commanded), np.asarray(ideal)
    big = np.abs(np.asarray(ERRORS)) >= 0.2
    right_way = float(np.mean(np.sign(commanded_a[big]) == np.sign(ideal_a[big])))
    correlation = float(np.corrcoef(commanded_a, ideal_a)[0, 1]) if np.std(commanded_a) > 1e-9 else 0.0
    return {"furniture": furniture, "turns_toward_goal": right_way, "correlation": correlation, "grid": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--furniture", nargs="+", default=["table", "counter", "shelf"])
    parser.add_argument("--draws", type=int, default=4, help="noise draws per heading error")
    parser.add_argument("--seed", type=int, default=1000, help="scene seed (held-out seeds are 1000+)")
    args = parser.parse_args()

    from policy.inference import Pi05Policy
    from robots.registry import make_robot

    policy = Pi05Policy.from_checkpoint(args.checkpoint, device="cpu")
    robot = make_robot("sim-kitchen", seed=args.seed, cameras=tuple(policy.metadata["camera_names"]))
    robot.reset(args.seed)
    try:
        results = [heading_response(policy, robot, name, args.draws, args.seed) for name in args.furniture]
    finally:
        robot.close()
    print("| furniture | turns toward the goal | correlation with the ideal turn | commanded turn at e = -2.5 … +2.5 |")
    print("| --- | ---: | ---: | --- |")
    for r in results:
        turns = " ".join(f"{row['commanded_turn']:+.2f}" for row in r["grid"])
        print(f"| {r['furniture']} | {r['turns_toward_goal']:.0%} | {r['correlation']:+.2f} | {turns} |")
    print(json.dumps({"checkpoint": args.checkpoint, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
