"""One episode's per-frame numbers (timestamp, state, executed action) for the console's plots, and its Rerun
export, both through the dataset reader (no video decoding for the numbers).

Rows are decimated evenly so a long episode stays a small JSON body; the console draws at most a few thousand
points per line anyway.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.api.episodes_index import open_reader


class EpisodeDataUnavailable(RuntimeError):
    """The dataset or the episode's rows cannot be read."""


def read_episode_data(root: Path, episode_index: int, max_points: int = 2000) -> dict[str, Any]:
    try:
        reader = open_reader(root)
        arrays = reader.episode_arrays(episode_index)
    except (OSError, ValueError, KeyError, LookupError) as exc:
        raise EpisodeDataUnavailable(f"cannot read episode {episode_index} in {root}: {exc}") from exc
    length = len(arrays["timestamp"])
    if length == 0:
        raise EpisodeDataUnavailable(f"episode {episode_index} has no frames in {root}")
    keep = np.unique(np.linspace(0, length - 1, min(length, max_points)).round().astype(np.int64))
    return {
        "fps": float(reader.fps),
        "length": int(length),
        "frame_index": np.asarray(arrays["frame_index"])[keep].tolist(),
        "timestamp": np.round(np.asarray(arrays["timestamp"], dtype=np.float64)[keep], 6).tolist(),
        "state_names": list(reader.state_names),
        "action_names": list(reader.action_names),
        "state": np.round(np.asarray(arrays["state"], dtype=np.float64)[keep], 6).tolist(),
        "action": np.round(np.asarray(arrays["action"], dtype=np.float64)[keep], 6).tolist(),
    }


def export_rerun_file(root: Path, episode_index: int) -> Path:
    """The episode as a temporary .rrd file (the caller deletes it); RuntimeError when rerun-sdk is missing."""
    from policy.data.rerun_export import export_episode

    folder = Path(tempfile.mkdtemp(prefix="hearth-rrd-"))
    try:
        reader = open_reader(root)
    except (OSError, ValueError, KeyError) as exc:
        raise EpisodeDataUnavailable(f"cannot read {root}: {exc}") from exc
    return export_episode(reader, episode_index, folder / f"episode-{episode_index}.rrd")
