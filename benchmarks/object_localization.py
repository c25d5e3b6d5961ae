"""Can the sim-small vision tower learn where the object is when it is told directly? Supervised, one camera.

Why: `benchmarks/vision_probe.py` shows the trained image tokens carry no more about the object's position than a
random tower's. Two causes remain: the images at this size do not let a tower this small find a 7-pixel object
among distractors, or they do and the policy's action loss is too weak a teacher. Here the tower (the preset's
SigLIP-style encoder and projector, from the checkpoint or freshly initialized) plus a linear head is trained to
regress the object's offset along the furniture from one camera image, on training seeds, and scored (R²) on
other seeds. The object's name is not an input: one object per task, so each task is a separate head output and
the loss uses the output of the task's object. High R² means the information is learnable from the pixels and an
auxiliary target (the object's position, known in the simulator at training time only) is the next lever; low R²
means the camera or the image size has to change first.

    .venv/bin/python benchmarks/object_localization.py --checkpoint checkpoints/sim-small --camera head
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Localizer(nn.Module):
    """Vision tower -> projector -> flattened tokens -> one offset per task."""

    def __init__(self, vision: nn.Module, projector: nn.Module, tokens: int, width: int, tasks: int) -> None:
        super().__init__()
        self.vision, self.projector = vision, projector
        self.head = nn.Linear(tokens * width, tasks)

    def forward(self, images: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        tokens = self.projector(self.vision(images))
        return self.head(tokens.flatten(1)).gather(1, task[:, None])[:, 0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="its preset and, unless --fresh, its vision weights")
    parser.add_argument("--camera", default="head")
    parser.add_argument("--fresh", action="store_true", help="start the tower from random weights")
    parser.add_argument("--seeds", type=int, default=100, help="training seeds 0 … N-1 (the last fifth is the test)")
    parser.add_argument("--per-scene", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from vision_probe import TASKS, scenes

    from policy.inference import Pi05Policy, preprocess_images
    from policy.model.pi05 import Pi05Model
    from robots.registry import make_robot

    policy = Pi05Policy.from_checkpoint(args.checkpoint, device="cpu")
    model = Pi05Model(policy.config) if args.fresh else policy.model
    model = model.float().train()
    size = policy.config.vision.image_size
    robot = make_robot("sim-kitchen", task=TASKS[0], seed=0, cameras=(args.camera,))
    started = time.monotonic()
    try:
        images, _needs, offsets, seed_of = scenes(robot, range(args.seeds), args.per_scene, np.random.default_rng(0))
    finally:
        robot.close()
    render_s = time.monotonic() - started
    x = torch.cat([preprocess_images(im, [args.camera], size) for im in images])
    y = torch.tensor(offsets, dtype=torch.float32)
    task = torch.tensor([(i // args.per_scene) % len(TASKS) for i in range(len(images))])
    test = torch.from_numpy(seed_of >= int(0.8 * args.seeds))
    train_rows = torch.nonzero(~test)[:, 0]
    tokens = policy.config.vision.num_patches
    net = Localizer(model.vision, model.projector, tokens, model.projector.out_features, len(TASKS))
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    started = time.monotonic()
    for step in range(args.steps):
        rows = train_rows[torch.randint(len(train_rows), (32,), generator=generator)]
        loss = nn.functional.mse_loss(net(x[rows], task[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 250 == 0:
            print(f"step {step + 1}: train mse {loss.item():.4f}", flush=True)
    train_s = time.monotonic() - started
    net.eval()
    with torch.no_grad():
        pred = net(x[test], task[test]).numpy()
    truth = y[test].numpy()
    r2 = 1.0 - float(np.sum((truth - pred) ** 2) / np.sum((truth - truth.mean()) ** 2))
    mae = float(np.mean(np.abs(truth - pred)))
    result = {
        "checkpoint": args.checkpoint,
        "camera": args.camera,
        "start": "random" if args.fresh else "checkpoint",
        "placements": len(images),
        "test_placements": int(test.sum()),
        "steps": args.steps,
        "lr": args.lr,
        "test_r2": r2,
        "test_mae_m": mae,
        "offset_spread_m": float(np.std(truth)),
        "render_s": render_s,
        "train_s": train_s,
    }
    print(f"test R² {r2:+.2f}, mean abs error {mae:.3f} m (offsets spread {np.std(truth):.3f} m)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
