"""Recorded-looking normalized action chunks, for FAST tests and benchmarks when no dataset is at hand.

Why these shapes: teleoperated and scripted arm motion is a few smooth minimum-jerk moves between waypoints plus
small sensor noise, and grippers are nearly binary with an occasional fast open/close. That mix is what the DCT
must compress, and the gripper steps are its hardest case, so both are in here.
"""

from __future__ import annotations

import itertools

import numpy as np

MIN_MOVE_STEPS = 10  # 0.2 s at 50 Hz


def _min_jerk(s: np.ndarray) -> np.ndarray:
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def smooth_chunks(
    n: int,
    horizon: int = 50,
    action_dim: int = 7,
    seed: int = 0,
    gripper_every: int = 7,
    noise: float = 0.003,
) -> np.ndarray:
    """``n`` chunks [n, horizon, action_dim] in roughly [-1, 1]; every ``gripper_every``-th dim is a gripper.

    With ``action_dim=14`` and the default, dims 6 and 13 are grippers (two 6-joint arms), like ALOHA.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(horizon)
    out = np.empty((n, horizon, action_dim))
    for i in range(n):
        for d in range(action_dim):
            if gripper_every and (d + 1) % gripper_every == 0:
                out[i, :, d] = _gripper(rng, horizon)
                continue
            # 1-3 moves, each at least MIN_MOVE_STEPS long (a real arm cannot jump between waypoints)
            n_moves = int(rng.integers(1, max(1, min(3, horizon // MIN_MOVE_STEPS)) + 1))
            spare = max(horizon - 1 - n_moves * MIN_MOVE_STEPS, 0)
            lengths = rng.multinomial(spare, np.ones(n_moves) / n_moves) + min(MIN_MOVE_STEPS, horizon - 1)
            bounds = [0, *np.minimum(np.cumsum(lengths), horizon - 1).tolist()]
            value = rng.uniform(-0.8, 0.8)
            track = np.full(horizon, value)
            for a, b in itertools.pairwise(bounds):
                target = float(np.clip(value + rng.normal(0, 0.3), -1, 1))
                s = (t[a : b + 1] - a) / max(b - a, 1)
                track[a : b + 1] = value + (target - value) * _min_jerk(s)
                value = target
            out[i, :, d] = track + rng.normal(0, noise, horizon)
    return out.astype(np.float32)


def _gripper(rng: np.random.Generator, horizon: int) -> np.ndarray:
    start = float(rng.choice([-1.0, 1.0]))
    track = np.full(horizon, start)
    if rng.random() < 0.3:  # one open/close within the chunk, over ~5 steps
        at = int(rng.integers(0, max(horizon - 5, 1)))
        ramp = _min_jerk(np.linspace(0, 1, 5))[: horizon - at]
        track[at : at + len(ramp)] = start - 2 * start * ramp
        track[at + len(ramp) :] = -start
    return track
