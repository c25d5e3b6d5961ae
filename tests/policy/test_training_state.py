"""Training state is stored without pickle and resumes exactly; folders saved before still load, safely."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from policy.training.ema import ExponentialMovingAverage
from policy.training.state import LEGACY_FILE, STRUCTURE_FILE, TENSORS_FILE, load_state, rng_state, save_state


def _trained_parts():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 10))
    ema = ExponentialMovingAverage(model, 0.99)
    for _ in range(3):
        loss = model(torch.randn(5, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        ema.update(model)
    return model, optimizer, scheduler, ema


def _payload(model, optimizer, scheduler, ema) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema": ema.state_dict(),
        "best": float("inf"),
    }


def test_saved_state_has_no_pickle_and_round_trips_exactly(tmp_path: Path) -> None:
    parts = _trained_parts()
    folder = save_state(tmp_path, 3, _payload(*parts), {"name": "t"}, keep_last=2)
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", STRUCTURE_FILE, TENSORS_FILE]
    payload, meta = load_state(folder)
    assert meta["step"] == 3 and payload["best"] == float("inf")
    model, optimizer, scheduler, ema = _trained_parts()  # the same run again, then restored from disk
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    ema.load_state_dict(payload["ema"])
    model.load_state_dict(payload["model"])
    expected = _payload(*parts)
    assert optimizer.state_dict()["param_groups"] == expected["optimizer"]["param_groups"]
    for index, state in expected["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(payload["optimizer"]["state"][index][key], value)
    assert scheduler.state_dict()["last_epoch"] == 3
    for key, value in expected["ema"].items():
        assert torch.equal(payload["ema"][key], value)
    numpy_rng = payload["rng"]["numpy"]
    assert numpy_rng[0] == "MT19937" and numpy_rng[1].dtype == np.uint32 and len(numpy_rng[1]) == 624
    np.random.set_state(numpy_rng)  # usable as-is


def test_a_state_folder_from_before_loads_without_running_pickled_code(tmp_path: Path) -> None:
    folder = tmp_path / "train_state" / "step_0000001"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"step": 1}')
    torch.save({**_payload(*_trained_parts()), "rng": rng_state()}, folder / LEGACY_FILE)  # the old format
    payload, meta = load_state(folder)
    assert meta["step"] == 1 and "exp_avg" in payload["optimizer"]["state"][0]

    class Exploit:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    (folder / LEGACY_FILE).write_bytes(pickle.dumps({"model": Exploit()}))
    with pytest.raises(pickle.UnpicklingError):
        load_state(folder)
