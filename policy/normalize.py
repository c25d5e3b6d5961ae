"""Quantile normalization of state and actions, stored as openpi's `norm_stats.json`.

π₀.₅ maps each dimension's [q01, q99] range onto [-1, 1] (openpi `Normalize(use_quantiles=True)`), so the
state bins in the prompt and the flow-matching targets share one scale. We keep openpi's exact formula,
including its 1e-6 epsilon and its "extra dimensions pass through unchanged" rule, so that stats files
and checkpoints move between openpi and hearth without a numerical change. The one departure is in computing
stats from data (`NormStats.from_arrays`): a range narrower than `min_range` is widened, see `widen_quantiles`.
Stats read from a file are used exactly as stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_EPS = 1e-6
_REQUIRED = ("mean", "std", "q01", "q99")
# Smallest q99 - q01 that stats computed from data may have, in each dimension's own units (rad, m, gripper units).
DEFAULT_MIN_RANGE = 0.05


def widen_quantiles(q01: np.ndarray, q99: np.ndarray, min_range: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widen every dimension whose q99 - q01 is below `min_range` to exactly `min_range`, around its midpoint.

    Why: the quantile formula divides by q99 - q01. A dimension that barely moves in the data, say an arm
    joint whose 1%/99% quantiles are 0.004 rad apart, turns a 0.02 rad reset perturbation into ±12 after
    normalization: far outside the [-1, 1] the model was trained on, in the state token, the prompt's bins
    (which clip) and the flow targets alike. A floor on the range caps that gain at 2 / min_range per unit.
    Symmetric widening keeps the midpoint, so values the data did cover still land near the middle.
    `min_range` is one number for all dimensions or one per dimension (for robots whose units differ a lot).
    """
    min_range = np.asarray(min_range, np.float64)
    if np.any(min_range < 0):
        raise ValueError(f"min_range must be >= 0, got {min_range}")
    q01, q99 = np.asarray(q01, np.float64), np.asarray(q99, np.float64)
    middle, narrow = (q01 + q99) / 2.0, q99 - q01 < min_range
    return np.where(narrow, middle - min_range / 2.0, q01), np.where(narrow, middle + min_range / 2.0, q99)


@dataclass
class FeatureStats:
    """Per-dimension statistics of one feature (float32 arrays of length d)."""

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    def __post_init__(self) -> None:
        for name in _REQUIRED:
            value = np.asarray(getattr(self, name), dtype=np.float32).reshape(-1)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"norm stat {name!r} contains NaN or inf")
            setattr(self, name, value)
        lengths = {name: getattr(self, name).shape[0] for name in _REQUIRED}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"norm stats have inconsistent lengths {lengths}")

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def unit(cls, dim: int) -> FeatureStats:
        """Stats under which quantile normalization is the identity map (q01=-1, q99=1)."""
        return cls(
            mean=np.zeros(dim, np.float32),
            std=np.ones(dim, np.float32),
            q01=-np.ones(dim, np.float32),
            q99=np.ones(dim, np.float32) - _EPS,  # so that q99 - q01 + eps == 2 exactly
        )

    def to_json(self) -> dict[str, list[float]]:
        return {name: [float(v) for v in getattr(self, name)] for name in _REQUIRED}


class NormStats:
    """Statistics for the features a policy normalizes (keys "state" and "actions")."""

    def __init__(self, features: dict[str, FeatureStats]):
        self.features = dict(features)

    def __repr__(self) -> str:
        dims = {key: stats.dim for key, stats in self.features.items()}
        return f"NormStats({dims})"

    def __getitem__(self, key: str) -> FeatureStats:
        try:
            return self.features[key]
        except KeyError:
            raise KeyError(f"no norm stats for {key!r}; available: {sorted(self.features)}") from None

    # ---- files ---------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: dict) -> NormStats:
        if not isinstance(data, dict) or "norm_stats" not in data or not isinstance(data["norm_stats"], dict):
            raise ValueError('norm stats JSON must look like {"norm_stats": {"state": {...}, "actions": {...}}}')
        features: dict[str, FeatureStats] = {}
        for key, entry in data["norm_stats"].items():
            missing = [name for name in _REQUIRED if name not in entry]
            if missing:
                raise ValueError(
                    f"norm stats for {key!r} lack {missing}; quantile normalization (π₀.₅) needs mean, std, q01 and q99"
                )
            features[key] = FeatureStats(**{name: np.asarray(entry[name], np.float32) for name in _REQUIRED})
        return cls(features)

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        """Read openpi's `norm_stats.json`; `path` may also be the folder that contains it."""
        path = Path(path)
        if path.is_dir():
            path = path / "norm_stats.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"norm stats file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"norm stats file {path} is not valid JSON: {exc}") from None
        return cls.from_json(data)

    def to_json(self) -> dict:
        return {"norm_stats": {key: stats.to_json() for key, stats in self.features.items()}}

    def save(self, path: str | Path) -> None:
        """Write openpi's layout; `path` may be a folder (then `norm_stats.json` inside it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "norm_stats.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        tmp.replace(path)

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], min_range: float | np.ndarray = DEFAULT_MIN_RANGE) -> NormStats:
        """Exact statistics over all rows of each [N, d] array (openpi approximates quantiles by histogram).

        Quantile ranges narrower than `min_range` (in each dimension's units) are widened, see `widen_quantiles`;
        `min_range=0` gives the raw quantiles.
        """
        features = {}
        for key, values in arrays.items():
            values = np.asarray(values, dtype=np.float64)
            if values.ndim == 1:
                values = values[:, None]
            values = values.reshape(-1, values.shape[-1])
            if values.shape[0] == 0:
                raise ValueError(f"cannot compute norm stats for {key!r} from zero rows")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"cannot compute norm stats for {key!r}: values contain NaN or inf")
            q01, q99 = widen_quantiles(np.quantile(values, 0.01, axis=0), np.quantile(values, 0.99, axis=0), min_range)
            features[key] = FeatureStats(mean=values.mean(axis=0), std=values.std(axis=0), q01=q01, q99=q99)
        return cls(features)

    @classmethod
    def unit(cls, state_dim: int, action_dim: int) -> NormStats:
        """Identity normalization, for randomly initialised policies in tests and benchmarks."""
        return cls({"state": FeatureStats.unit(state_dim), "actions": FeatureStats.unit(action_dim)})

    # ---- maths -----------------------------------------------------------------------------------
    def normalize(self, key: str, x: np.ndarray) -> np.ndarray:
        """(x - q01) / (q99 - q01 + 1e-6) * 2 - 1 on the first d dims; further dims pass through (openpi)."""
        stats = self[key]
        x = np.asarray(x, dtype=np.float32)
        d = min(stats.dim, x.shape[-1])
        out = x.copy()
        out[..., :d] = (x[..., :d] - stats.q01[:d]) / (stats.q99[:d] - stats.q01[:d] + _EPS) * 2.0 - 1.0
        return out

    def unnormalize(self, key: str, y: np.ndarray) -> np.ndarray:
        """Inverse of `normalize`: (y + 1) / 2 * (q99 - q01 + 1e-6) + q01."""
        stats = self[key]
        y = np.asarray(y, dtype=np.float32)
        d = min(stats.dim, y.shape[-1])
        out = y.copy()
        out[..., :d] = (y[..., :d] + 1.0) / 2.0 * (stats.q99[:d] - stats.q01[:d] + _EPS) + stats.q01[:d]
        return out

    def dim(self, key: str) -> int:
        return self[key].dim
