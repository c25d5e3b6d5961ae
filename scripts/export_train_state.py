"""Export a servable checkpoint from a training run's saved state while the run goes on (EMA weights).

Why: a CPU stage runs for hours and only exports at its end; evaluating an intermediate state tells early whether
the recipe works. The weights come from `run/train_state/step_N` (EMA when present), the architecture and
metadata from `--like` (the checkpoint the run warm-started from) with the run's `model.overrides`, and the norm
stats are rebuilt the way the trainer builds them (prepared data re-framed to the run's action frame and horizon).

    .venv/bin/python scripts/export_train_state.py --run runs/sim-small-stage2/run --data runs/sim-small-stage2/data \
        --like checkpoints/sim-small --out runs/sim-small-stage2/step500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the run's prepared data folder")
    parser.add_argument("--like", type=Path, required=True, help="checkpoint with the run's architecture/metadata")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--step", type=int, default=None, help="default: the latest saved state")
    args = parser.parse_args()

    from policy.action_frame import ActionFrame
    from policy.inference import Pi05Policy
    from policy.normalize import NormStats
    from policy.train import reframe_chunks
    from policy.training.config import TrainConfig
    from policy.training.state import latest_state, load_state, step_dir

    config = TrainConfig.model_validate(yaml.safe_load((args.run / "config.yaml").read_text()))
    folder = step_dir(args.run, args.step) if args.step is not None else latest_state(args.run)
    if folder is None or not folder.exists():
        raise SystemExit(f"no saved training state in {args.run}")
    payload, meta = load_state(folder)
    policy = Pi05Policy.from_checkpoint(args.like, device="cpu")
    for key, value in config.model.overrides.items():
        setattr(policy.model.config, key, value)
    policy.model.load_state_dict(payload.get("ema") or payload["model"])

    data_meta = json.loads((args.data / "dataset.json").read_text())
    old_stats = NormStats.load(args.data / "norm_stats.json")
    horizon = policy.model.config.action_horizon
    with np.load(args.data / "arrays.npz") as arrays:  # members load on access: no images
        actions, pads, states = arrays["actions"][:, :horizon], arrays["action_is_pad"][:, :horizon], arrays["states"]
    spec = config.data.action_frame.as_metadata() if config.data.action_frame else None
    _, policy.norm_stats = reframe_chunks(actions, pads, states, old_stats, data_meta, spec)  # as the trainer does
    policy.metadata["action_horizon"] = horizon
    policy.metadata["action_frame"] = spec or {}
    policy.action_frame = ActionFrame.from_metadata(policy.metadata)
    policy.save(args.out)
    print(f"exported step {meta['step']} of {args.run} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
