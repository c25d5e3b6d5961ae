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


def test_narrow_ranges_are_widened_when_computed_but_stored_stats_are_kept(tmp_path) -> None:
    """A joint that barely moves in the data must not turn a small perturbation into a huge normalized value."""
    rng = np.random.default_rng(2)
    still = 0.3 + rng.uniform(-0.002, 0.002, 1000)  # q99 - q01 ≈ 0.004 rad
    moving = rng.uniform(-1.0, 1.0, 1000)
    values = np.stack([still, moving], axis=1)
    raw = NormStats.from_arrays({"state": values}, min_range=0.0)["state"]
    assert raw.q99[0] - raw.q01[0] < 0.005
    perturbed = np.array([0.3 + 0.02, 0.0], np.float32)  # a 0.02 rad reset offset
    assert abs(NormStats({"state": raw}).normalize("state", perturbed)[0]) > 9.0

    stats = NormStats.from_arrays({"state": values})  # default min_range 0.05
    s = stats["state"]
    assert s.q99[0] - s.q01[0] == pytest.approx(0.05, abs=1e-6)
    assert (s.q01[0] + s.q99[0]) / 2 == pytest.approx((raw.q01[0] + raw.q99[0]) / 2, abs=1e-6)  # same midpoint
    assert s.q01[1] == raw.q01[1] and s.q99[1] == raw.q99[1]  # wide dimensions are untouched
    assert s.mean[0] == raw.mean[0] and s.std[0] == raw.std[0]
    assert abs(stats.normalize("state", perturbed)[0]) == pytest.approx(0.8, abs=0.05)

    # per-dimension floors, and bad floors
    per_dim = NormStats.from_arrays({"state": values}, min_range=np.array([0.1, 3.0]))["state"]
    assert per_dim.q99[0] - per_dim.q01[0] == pytest.approx(0.1, abs=1e-6)
    assert per_dim.q99[1] - per_dim.q01[1] == pytest.approx(3.0, abs=1e-6)
    with pytest.raises(ValueError, match="min_range"):
        NormStats.from_arrays({"state": values}, min_range=-1.0)

    # a stored file is read as it is, narrow range and all
    NormStats({"state": raw}).save(tmp_path)
    loaded = NormStats.load(tmp_path)["state"]
    np.testing.assert_array_equal(loaded.q01, raw.q01)
    np.testing.assert_array_equal(loaded.q99, raw.q99)
