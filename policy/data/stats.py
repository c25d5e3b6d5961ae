"""Feature statistics in LeRobot's layout: min, max, mean, std, count and the q01/q10/q50/q90/q99 quantiles.

Per episode we compute them exactly (episodes are small); the dataset's `meta/stats.json` aggregates them the way
LeRobot does (count-weighted mean, pooled variance, global min/max, quantiles as a conservative envelope), so a
LeRobot tool that recomputes or merges stats lands on the same numbers. Images are summarised per channel in [0, 1]
with shape (3, 1, 1), from a subsample of frames as LeRobot does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)

Stats = dict[str, np.ndarray]


def vector_stats(values: np.ndarray) -> Stats:
    """Per-dimension stats of [N, d] (or [N]) values; keeps LeRobot's shapes ([d], count [1])."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[0] == 0:
        raise ValueError("cannot compute statistics of zero frames")
    stats: Stats = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
        "count": np.array([values.shape[0]], dtype=np.int64),
    }
    quantiles = np.quantile(values, list(QUANTILES.values()), axis=0)  # one partition pass for all five
    for name, value in zip(QUANTILES, quantiles, strict=True):
        stats[name] = value
    return stats


def sample_indices(length: int) -> np.ndarray:
    """LeRobot's image subsample: about length**0.75 frames, at least 100 (or all), at most 10,000, evenly spaced."""
    if length <= 0:
        return np.zeros(0, dtype=np.int64)
    count = min(length, max(100, min(10_000, int(length**0.75))))
    return np.round(np.linspace(0, length - 1, count)).astype(np.int64)


def downsample(image: np.ndarray, target: int = 48) -> np.ndarray:
    """Stride-downsample an HxWx3 image to about `target` px on its long side. Per-channel statistics do not need
    more, and the exact quantiles over full-size frames took seconds per episode, which finish() would wait for."""
    step = max(1, int(max(image.shape[:2]) // target))
    return image[::step, ::step]


def image_stats(images: Sequence[np.ndarray]) -> Stats:
    """Per-channel stats in [0, 1] over uint8 HxWx3 images, shaped (3, 1, 1) like LeRobot's."""
    if len(images) == 0:
        raise ValueError("cannot compute image statistics of zero frames")
    pixels = np.concatenate([downsample(img).reshape(-1, 3) for img in images])
    flat = _uint8_channel_stats(pixels)
    stats = {name: value.reshape(3, 1, 1) for name, value in flat.items() if name != "count"}
    stats["count"] = np.array([len(images)], dtype=np.int64)
    return stats


def _uint8_channel_stats(pixels: np.ndarray) -> Stats:
    """vector_stats of uint8 [N, 3] pixels scaled to [0, 1], exactly, via a 256-bin histogram per channel."""
    count = pixels.shape[0]
    out: Stats = {"min": pixels.min(axis=0) / 255.0, "max": pixels.max(axis=0) / 255.0}
    values = pixels.astype(np.float64) / 255.0
    out["mean"], out["std"] = values.mean(axis=0), values.std(axis=0)
    hist = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(3)])  # [3, 256]
    cdf = np.cumsum(hist, axis=1)
    for name, q in QUANTILES.items():
        # numpy's default (linear) quantile: position q*(N-1) between the two neighbouring order statistics
        position = q * (count - 1)
        lo, hi = int(np.floor(position)), int(np.ceil(position))
        v_lo = np.array([np.searchsorted(cdf[c], lo + 1) for c in range(3)], np.float64)
        v_hi = np.array([np.searchsorted(cdf[c], hi + 1) for c in range(3)], np.float64)
        out[name] = (v_lo + (position - lo) * (v_hi - v_lo)) / 255.0
    return out


def aggregate(per_episode: Sequence[Stats]) -> Stats:
    """Combine episodes' stats of one feature (LeRobot's aggregate_stats, quantiles as an envelope)."""
    if not per_episode:
        raise ValueError("no episode statistics to aggregate")
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in per_episode])
    total = counts.sum()
    shape = np.asarray(per_episode[0]["mean"]).shape
    weights = (counts / total).reshape((-1,) + (1,) * len(shape))
    means = np.stack([np.asarray(s["mean"], np.float64) for s in per_episode])
    stds = np.stack([np.asarray(s["std"], np.float64) for s in per_episode])
    mean = (means * weights).sum(axis=0)
    variance = ((stds**2 + (means - mean) ** 2) * weights).sum(axis=0)
    out: Stats = {
        "min": np.min(np.stack([np.asarray(s["min"], np.float64) for s in per_episode]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"], np.float64) for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(variance, 0.0)),
        "count": np.array([int(total)], dtype=np.int64),
    }
    for name, q in QUANTILES.items():
        stacked = np.stack([np.asarray(s[name], np.float64) for s in per_episode if name in s])
        out[name] = stacked.min(axis=0) if q <= 0.5 else stacked.max(axis=0)
    return out


def to_json(stats: dict[str, Stats]) -> dict[str, dict[str, list]]:
    return {feature: {name: np.asarray(value).tolist() for name, value in s.items()} for feature, s in stats.items()}


def from_json(data: dict[str, dict[str, list]]) -> dict[str, Stats]:
    return {feature: {name: np.asarray(value) for name, value in s.items()} for feature, s in data.items()}
