"""Feature statistics: the histogram path for images equals numpy's exact quantiles; aggregation is LeRobot's."""

from __future__ import annotations

import numpy as np
import pytest

from policy.data import stats


@pytest.mark.parametrize("count", [1, 2, 7, 1001])
def test_image_channel_stats_equal_exact_numpy(count) -> None:
    rng = np.random.default_rng(count)
    pixels = rng.integers(0, 256, size=(count, 3)).astype(np.uint8)
    pixels[:, 2] = rng.integers(100, 120, size=count)  # a narrow channel
    fast = stats._uint8_channel_stats(pixels)
    exact = stats.vector_stats(pixels.astype(np.float64) / 255.0)
    for name in ("min", "max", "mean", "std", *stats.QUANTILES):
        np.testing.assert_allclose(fast[name], exact[name], atol=1e-12, err_msg=name)


def test_aggregate_pools_mean_and_variance_and_envelopes_quantiles() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (50, 3)), rng.normal(2, 3, (20, 3))
    merged = stats.aggregate([stats.vector_stats(a), stats.vector_stats(b)])
    both = np.concatenate([a, b])
    np.testing.assert_allclose(merged["mean"], both.mean(axis=0))
    np.testing.assert_allclose(merged["std"], both.std(axis=0))
    np.testing.assert_allclose(merged["min"], both.min(axis=0))
    assert merged["count"].tolist() == [70]
    np.testing.assert_allclose(merged["q01"], np.minimum(np.quantile(a, 0.01, axis=0), np.quantile(b, 0.01, axis=0)))
    np.testing.assert_allclose(merged["q99"], np.maximum(np.quantile(a, 0.99, axis=0), np.quantile(b, 0.99, axis=0)))
    with pytest.raises(ValueError):
        stats.vector_stats(np.zeros((0, 2)))
