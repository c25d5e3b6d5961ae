"""Quantile normalization: openpi's formula, its file layout, and clear errors for bad stats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from policy.normalize import FeatureStats, NormStats


def _stats() -> NormStats:
    rng = np.random.default_rng(0)
    return NormStats.from_arrays({"state": rng.normal(2.0, 3.0, (1000, 4)), "actions": rng.uniform(-5, 5, (1000, 3))})


def test_quantile_formula_matches_openpi() -> None:
    stats = _stats()
    s = stats["state"]
    x = np.array([0.5, -1.0, 3.0, 10.0], np.float32)
    expected = (x - s.q01) / (s.q99 - s.q01 + 1e-6) * 2.0 - 1.0
    np.testing.assert_allclose(stats.normalize("state", x), expected, rtol=1e-6)
    # q01 maps to -1 and q99 to (almost) +1
    np.testing.assert_allclose(stats.normalize("state", s.q01), -1.0, atol=1e-6)
    np.testing.assert_allclose(stats.normalize("state", s.q99), 1.0, atol=1e-5)


def test_round_trip_and_extra_dims_pass_through() -> None:
    stats = _stats()
    x = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)  # 5 dims, stats have 3
    y = stats.normalize("actions", x)
    np.testing.assert_array_equal(y[:, 3:], x[:, 3:])
    np.testing.assert_allclose(stats.unnormalize("actions", y), x, atol=1e-5)


def test_from_arrays_exact_quantiles() -> None:
    values = np.arange(101, dtype=np.float64)[:, None]
    stats = NormStats.from_arrays({"state": values})["state"]
    assert stats.q01[0] == pytest.approx(1.0)
    assert stats.q99[0] == pytest.approx(99.0)
    assert stats.mean[0] == pytest.approx(50.0)


def test_save_load_openpi_layout(tmp_path) -> None:
    stats = _stats()
    stats.save(tmp_path / "norm_stats.json")
    data = json.loads((tmp_path / "norm_stats.json").read_text())
    assert set(data["norm_stats"]) == {"state", "actions"}
    assert set(data["norm_stats"]["state"]) == {"mean", "std", "q01", "q99"}
    loaded = NormStats.load(tmp_path)  # the folder works too
    for key in ("state", "actions"):
        np.testing.assert_allclose(loaded[key].q99, stats[key].q99)


def test_missing_quantiles_and_bad_files_are_clear(tmp_path) -> None:
    path = tmp_path / "norm_stats.json"
    path.write_text(json.dumps({"norm_stats": {"state": {"mean": [0.0], "std": [1.0]}}}))
    with pytest.raises(ValueError, match="q01"):
        NormStats.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        NormStats.load(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        NormStats.load(tmp_path / "nope.json")
    with pytest.raises(KeyError, match="available"):
        _stats().normalize("velocity", np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        NormStats.from_arrays({"state": np.array([[np.nan]])})
    with pytest.raises(ValueError, match="inconsistent"):
        FeatureStats(mean=np.zeros(2), std=np.ones(2), q01=np.zeros(3), q99=np.ones(2))


def test_unit_stats_are_identity() -> None:
    stats = NormStats.unit(3, 2)
    x = np.array([-0.7, 0.0, 0.9], np.float32)
    np.testing.assert_allclose(stats.normalize("state", x), x, atol=1e-6)
