"""Merge finished episodes of several datasets (same features) into one, in a caller-chosen order.

Used by parallel collection: each worker process writes its own dataset, and the results are merged afterwards.
Each import is an ordinary commit of the destination writer, so a merge interrupted half-way leaves a valid
dataset, and `skip` lets a resumed merge pass over what already arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from policy.data.layout import interface_version_of
from policy.data.reader import EpisodeInfo, LeRobotDatasetReader
from policy.data.writer import OUTCOME_RECOVERED, LeRobotDatasetWriter

logger = logging.getLogger(__name__)


def writer_like(reader: LeRobotDatasetReader, root: str | Path) -> LeRobotDatasetWriter:
    """A writer at `root` with the same fps, robot type and interface version, cameras, state and action names as
    `reader`'s dataset."""
    shapes = {c: tuple(reader.features[f"observation.images.{c}"]["shape"][:2]) for c in reader.camera_names}
    return LeRobotDatasetWriter(
        root,
        reader.fps,
        reader.info.get("robot_type") or "",
        shapes,
        reader.state_names,
        reader.action_names,
        robot_interface_version=interface_version_of(reader.info),
    )


def merge_datasets(
    dest: str | Path,
    sources: Sequence[str | Path],
    order: Callable[[EpisodeInfo], Any] | None = None,
    skip: Callable[[EpisodeInfo], bool] | None = None,
    include_interrupted: bool = False,
    on_episode: Callable[[EpisodeInfo, int], None] | None = None,
) -> int:
    """Append every finished episode of `sources` to `dest`; returns how many were imported.

    order: sort key over all source episodes (default: source, then episode index). skip: episodes to leave out.
    Episodes recovered from a crash are left out unless `include_interrupted`.
    """
    readers = [LeRobotDatasetReader(s) for s in sources if (Path(s) / "meta" / "info.json").exists()]
    picked: list[tuple[Any, int, LeRobotDatasetReader, EpisodeInfo]] = []
    for position, reader in enumerate(readers):
        for info in reader.episodes:
            if info.outcome == OUTCOME_RECOVERED and info.recovered and not include_interrupted:
                logger.info("not merging episode %d of %s: it was interrupted", info.index, reader.root)
                continue
            if skip is not None and skip(info):
                continue
            key = order(info) if order is not None else (position, info.index)
            picked.append((key, position, reader, info))
    if not picked:
        return 0
    picked.sort(key=lambda item: (item[0], item[1], item[3].index))
    writer = writer_like(picked[0][2], dest)
    try:
        for _, _, reader, info in picked:
            new_index = writer.import_episode(reader, info.index)
            if on_episode is not None:
                on_episode(info, new_index)
    finally:
        writer.close()
    return len(picked)
