"""Exact-resume training state: weights, optimizer, scheduler, EMA, step and RNG, one folder per saved step.

Layout under the run folder: `train_state/step_000500/{state.safetensors, state.json, meta.json}`. A folder is
written under a temporary name and renamed when complete, and `meta.json` is written last, so a crash mid-save
never leaves a folder that `latest_state` would pick. Old folders beyond `keep_last` are deleted after a
successful save.

No pickle: loading a pickled `state.pt` (`torch.load(weights_only=False)`) runs whatever code the file names, so
a shared or downloaded run folder could execute code on resume. Every tensor (weights, Adam moments, EMA, torch
RNG) goes into one safetensors file; the structure around them (optimizer param groups, scheduler counters,
NumPy/Python RNG) goes into JSON, with tensors referenced by key (`policy/training/state_codec.py`). Folders from
before this format (`state.pt`) still load, through `torch.load(weights_only=True)`, which refuses code objects.
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
from safetensors.torch import load_file, save_file

from policy.training.state_codec import decode, encode

STATE_DIR = "train_state"
TENSORS_FILE = "state.safetensors"
STRUCTURE_FILE = "state.json"
LEGACY_FILE = "state.pt"


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
    np.random.set_state(tuple(state["numpy"]))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
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
    structure, tensors = encode({**payload, "rng": rng_state()})
    save_file(tensors, str(tmp / TENSORS_FILE))
    (tmp / STRUCTURE_FILE).write_text(json.dumps(structure))
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
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    if (folder / TENSORS_FILE).exists():
        tensors = load_file(str(folder / TENSORS_FILE), device=str(map_location))
        payload = decode(json.loads((folder / STRUCTURE_FILE).read_text()), tensors)
    else:
        payload = _load_legacy(folder / LEGACY_FILE, map_location)
    return payload, meta


def _load_legacy(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """A `state.pt` from before safetensors, read with torch's restricted unpickler (tensors, containers and the
    NumPy RNG state's array only; anything else is refused)."""
    core = np._core if hasattr(np, "_core") else np.core  # NumPy 2 renamed it; 1.x has only np.core
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), core.multiarray._reconstruct]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location=map_location, weights_only=True)
