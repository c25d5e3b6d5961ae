"""Do the vision tower's features say where the object is? A linear probe on them, per camera, against random weights.

Why: `benchmarks/lineup_response.py` shows System 1 commanding the same line-up move with black images. Either the
image tokens do not encode the object's position along the furniture, or they do and the action expert does not
use them. A ridge regression from one camera's image tokens (after the projector, flattened so token positions
are kept) to the base move the line-up needs tells the two apart: fitted on some scenes, scored (R²) on scenes
from other seeds. Baselines: the same probe on a freshly initialized model of the same preset, and on the raw
pixels; features trained to carry the object's position should beat both clearly. The base's shift along the
furniture (where the furniture sits in the view) is the probe's control: it should be easy.

The robot stands at the stand-off of the first object's furniture, shifted along it at random (±0.4 m), arm
tucked, as a "go to" leaves it. Training seeds only (0…), the held-out seeds are left alone.

    .venv/bin/python benchmarks/vision_probe.py --checkpoint checkpoints/sim-small
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from standoff import FIRST_PICK_TASKS as TASKS

ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def scenes(robot, seeds: range, per_scene: int, rng) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """Camera images, the needed move and the object's offset (both along the furniture), and each placement's
    seed. The needed move is the offset minus the base's shift; only the offset is the cameras' alone to tell."""
    from standoff import place_at_standoff, settle

    from robots.sim.kitchen import reach_pose
    from robots.sim.tasks import FURNITURE_OF

    images, needs, offsets, seed_of = [], [], [], []
    for seed in seeds:
        for task in TASKS:
            robot.set_task(task)
            robot.reset(seed)
            move = robot.spec.moves[0]
            furniture = FURNITURE_OF[move.source]
            for _ in range(per_scene):
                shift = rng.uniform(-0.4, 0.4)
                along, _toward = place_at_standoff(robot, furniture, shift)
                settle(robot)
                obs = robot.observe()
                p = robot.object_position(move.obj)
                need = np.asarray(reach_pose(furniture, p[0], p[1])[:2]) - np.asarray(robot.base_pose()[:2])
                images.append(obs.images)
                needs.append(float(need @ along))
                offsets.append(float(need @ along) + shift)
                seed_of.append(seed)
    return images, np.asarray(needs), np.asarray(offsets), np.asarray(seed_of)


@torch.no_grad()
def camera_features(model, images: list[dict], camera: str, size: int) -> np.ndarray:
    """Projected image tokens of one camera, flattened: [N, tokens * width]."""
    from policy.inference import preprocess_images

    out = []
    for start in range(0, len(images), 32):
        x = torch.cat([preprocess_images(im, [camera], size) for im in images[start : start + 32]])
        tokens = model.projector(model.vision(x.to(model.dtype)))
        out.append(tokens.flatten(1).float().numpy())
    return np.concatenate(out)


def pixel_features(images: list[dict], camera: str, size: int = 32) -> np.ndarray:
    """The camera's raw pixels at ``size`` px, flattened: what a linear probe gets without any network."""
    from policy.inference import preprocess_images

    return np.stack([preprocess_images(im, [camera], size)[0].flatten().numpy() for im in images])


def ridge_r2(features: np.ndarray, target: np.ndarray, seed_of: np.ndarray) -> float:
    """Test R² of a ridge probe: alpha chosen on a validation split, all three splits by seed."""
    seeds = np.unique(seed_of)
    fit_seeds, val_seeds, test_seeds = np.split(seeds, [int(0.6 * len(seeds)), int(0.75 * len(seeds))])
    fit, val, test = (np.isin(seed_of, s) for s in (fit_seeds, val_seeds, test_seeds))
    mean, std = features[fit].mean(0), features[fit].std(0) + 1e-6
    z = (features - mean) / std

    def solve(rows: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
        x, y = z[rows], target[rows]
        bias = y.mean()
        gram = x @ x.T + alpha * len(x) * np.eye(len(x))  # dual form: fewer samples than features
        return x.T @ np.linalg.solve(gram, y - bias), bias

    def r2(rows: np.ndarray, weights: np.ndarray, bias: float) -> float:
        pred = z[rows] @ weights + bias
        return 1.0 - float(np.sum((target[rows] - pred) ** 2) / np.sum((target[rows] - target[rows].mean()) ** 2))

    best = max(ALPHAS, key=lambda a: r2(val, *solve(fit, a)))
    return r2(test, *solve(fit | val, best))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--seeds", type=int, default=40, help="training seeds 0 … N-1")
    parser.add_argument("--per-scene", type=int, default=3, help="random shifts per (seed, task)")
    args = parser.parse_args()

    from policy.inference import Pi05Policy
    from policy.model.pi05 import Pi05Model
    from robots.registry import make_robot

    torch.manual_seed(0)
    policy = Pi05Policy.from_checkpoint(args.checkpoint, device="cpu")
    cameras = list(policy.metadata["camera_names"])
    fresh = Pi05Model(policy.config).eval()
    size = policy.config.vision.image_size
    robot = make_robot("sim-kitchen", task=TASKS[0], seed=0, cameras=tuple(cameras))
    try:
        images, needs, offsets, seed_of = scenes(robot, range(args.seeds), args.per_scene, np.random.default_rng(0))
    finally:
        robot.close()
    results = []
    for camera in cameras:
        features = {
            "trained": camera_features(policy.model, images, camera, size),
            "random init": camera_features(fresh, images, camera, size),
            "none (32 px pixels)": pixel_features(images, camera),
        }
        for name, x in features.items():
            results.append(
                {
                    "camera": camera,
                    "weights": name,
                    "needed_move_r2": ridge_r2(x, needs, seed_of),
                    "object_offset_r2": ridge_r2(x, offsets, seed_of),
                    "base_shift_r2": ridge_r2(x, offsets - needs, seed_of),
                }
            )
    print(f"{len(needs)} placements; test R² of a ridge probe (base shift: the control, the furniture's place in view)")
    print("| camera | features | needed move | object offset | base shift |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['camera']} | {r['weights']} | {r['needed_move_r2']:+.2f} | {r['object_offset_r2']:+.2f} "
            f"| {r['base_shift_r2']:+.2f} |"
        )
    print(json.dumps({"checkpoint": args.checkpoint, "placements": len(needs), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
