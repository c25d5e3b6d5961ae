"""Exact-resume training state: weights, optimizer, scheduler, EMA, step and RNG, one folder per saved step.

Layout under the run folder: `train_state/step_000500/{state.pt, meta.json}`. A folder is written under a
temporary name and renamed when complete, and `meta.json` is written last, so a crash mid-save never leaves a
folder that `latest_state` would pick. Old folders beyond `keep_last` are deleted after a successful save.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_DIR = "train_state"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / STATE_DIR / f"step_{step:07d}"


def save_state(run_dir: Path, step: int, payload: dict[str, Any], meta: dict[str, Any], keep_last: int) -> Path:
    final = step_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    torch.save({**payload, "rng": rng_state()}, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({"step": step, "saved_at": time.time(), **meta}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in complete_states(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_states(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / STATE_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp") and (p / "meta.json").exists()]
    return sorted(done, key=lambda p: int(p.name.split("_")[-1]))


def latest_state(run_dir: Path) -> Path | None:
    states = complete_states(run_dir)
    return states[-1] if states else None


def load_state(folder: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    meta = json.loads((Path(folder) / "meta.json").read_text())
    payload = torch.load(Path(folder) / "state.pt", map_location=map_location, weights_only=False)
    return payload, meta
