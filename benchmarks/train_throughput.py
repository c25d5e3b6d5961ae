"""Training throughput (samples/s) of the real training loop on synthetic data shaped like the sim datasets.

The data is random (images, tokens, chunks) but has the shapes the sim-small recipe trains on: two 64 px cameras,
~75-token System-1 sequences (prompt + FAST targets) and ~35-token System-2 sequences, 50-step chunks of 12 dims.
Throughput does not depend on the values, so this measures the loop (forward, backward, AdamW, EMA, augmentation).

    python benchmarks/train_throughput.py --preset sim-small --device cpu --batch 8 --steps 12
    python benchmarks/train_throughput.py --preset sim-small --device cuda --batch 128 --steps 60
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch


def synthetic_prepared(folder: Path, preset_name: str, frames: int, max_len: int, horizon: int | None) -> dict:
    from policy.model.config import preset
    from policy.normalize import NormStats
    from policy.tokenizers.text import household_tokenizer
    from policy.train import PreparedData
    from policy.training.data import TrainingArrays

    config = preset(preset_name, **({"action_horizon": horizon} if horizon else {}))
    size, h = config.vision.image_size, config.action_horizon
    rng = np.random.default_rng(0)
    tokenizer = household_tokenizer()

    def sequences(length: int, targets: int):
        tokens = rng.integers(3, 2000, size=(frames, max_len))
        mask = np.arange(max_len)[None] < length
        loss = mask & (np.arange(max_len)[None] >= length - targets)
        return np.where(mask, tokens, 0), np.repeat(mask, frames, 0), np.repeat(loss, frames, 0)

    s1, s2 = sequences(75, 45), sequences(35, 6)
    actions = np.zeros((frames, h, config.max_action_dim), np.float32)
    actions[:, :, :12] = rng.normal(size=(frames, h, 12))
    states = np.zeros((frames, config.max_state_dim), np.float32)
    states[:, :12] = rng.uniform(-1, 1, size=(frames, 12))
    arrays = TrainingArrays(
        camera_names=["head", "wrist"],
        images=rng.integers(0, 255, (frames, 2, size, size, 3), dtype=np.uint8),
        actions=actions,
        action_dim=12,
        action_is_pad=np.zeros((frames, h), bool),
        s1_tokens=s1[0],
        s1_mask=s1[1],
        s1_loss=s1[2],
        s2_tokens=s2[0],
        s2_mask=s2[1],
        s2_loss=s2[2],
        has_subtask=np.ones(frames, bool),
        episode_index=np.zeros(frames, np.int64),
        states=states,
    )
    names = [f"d{i}" for i in range(12)]
    meta = {"camera_names": ["head", "wrist"], "state_names": names, "action_names": names, "control_hz": 20.0}
    PreparedData(arrays, NormStats.unit(12, 12), tokenizer, None, meta).save(folder, compress=False)
    return {"image_size": size, "horizon": h}


def main() -> None:
    parser = argparse.ArgumentParser(description="training samples/s")
    parser.add_argument("--preset", default="sim-small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--knowledge-insulation", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    from policy.train import train
    from policy.training.config import TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        shapes = synthetic_prepared(Path(tmp) / "data", args.preset, max(args.batch * 4, 64), 88, None)
        config = TrainConfig.model_validate(
            {
                "name": "throughput",
                "steps": args.warmup + args.steps,
                "batch_size": args.batch,
                "device": args.device,
                "precision": args.precision,
                "threads": args.threads,
                "model": {"preset": args.preset},
                "loss": {"fast_ce": False, "knowledge_insulation": args.knowledge_insulation, "max_token_len": 88},
                "save_every": 10_000,
                "log_every": 10_000,
                "export_dtype": "float32",
            }
        )
        stamps: dict[int, float] = {}

        def stamp(step: int, values: dict) -> None:
            if args.device == "cuda":
                torch.cuda.synchronize()
            stamps[step] = time.perf_counter()

        train(config, Path(tmp) / "data", Path(tmp) / "run", progress=False, on_step=stamp)
    elapsed = stamps[args.warmup + args.steps] - stamps[args.warmup]
    result = {
        "preset": args.preset,
        "device": args.device,
        "precision": args.precision,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "steps_timed": args.steps,
        **shapes,
        "step_s": round(elapsed / args.steps, 4),
        "samples_per_s": round(args.batch * args.steps / elapsed, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
