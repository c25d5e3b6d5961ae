"""A writer process killed with SIGKILL mid-episode: finished episodes stay byte-identical and loadable, and the
interrupted episode is recovered from its journal on the next open (or discarded with a logged reason)."""

from __future__ import annotations

import hashlib
import logging
import re
import signal

import numpy as np
import pytest

from policy.data import layout
from policy.data.reader import LeRobotDatasetReader
from tests.policy.data.synthetic import CAMERAS, FPS, SyntheticEpisode, make_writer, write_episode
from tests.support import PYTHON, spawn, wait_until


def digest(root) -> dict[str, str]:
    files = [*root.glob("data/**/*.parquet"), *root.glob("videos/**/*.mp4")]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def frames_printed(process) -> int:
    found = re.findall(r"^frame (\d+)$", process.log_text(), flags=re.M)
    return int(found[-1]) + 1 if found else 0


@pytest.mark.slow
def test_sigkill_mid_episode_keeps_finished_episodes_and_recovers_the_running_one(tmp_path, caplog) -> None:
    root = tmp_path / "dataset"
    args = [PYTHON, "-m", "tests.policy.data.crash_writer", str(root), "2"]
    with spawn(args, tmp_path / "writer.log") as process:
        wait_until(lambda: frames_printed(process) >= 15 or not process.alive(), timeout=120, what="15 frames")
        assert process.alive(), process.log_text()
        before = digest(root)
        process.signal_group(signal.SIGKILL)
        process.popen.wait(timeout=10)
        printed = frames_printed(process)
    assert process.popen.returncode == -signal.SIGKILL

    # the dataset as left on disk is already loadable: the two finished episodes, nothing half-written
    reader = LeRobotDatasetReader(root)
    assert [e.length for e in reader.episodes] == [12, 12]
    assert digest(root) == before

    caplog.set_level(logging.WARNING, logger="policy.data.writer")
    with make_writer(root) as writer:
        assert writer.num_episodes == 3
    assert "recovered interrupted episode 2" in caplog.text
    assert digest(root).items() >= before.items()  # finished episodes' files untouched
    reader = LeRobotDatasetReader(root)
    recovered = reader.episode(2)
    assert recovered.recovered and recovered.outcome == "interrupted" and recovered.success is None
    assert recovered.length >= printed  # every frame add_frame returned for is there (one more may have landed)
    episode = SyntheticEpisode("interrupted task", recovered.length, 2)
    arrays = reader.episode_arrays(2)
    np.testing.assert_array_equal(arrays["state"], np.stack([episode.state(i) for i in range(recovered.length)]))
    np.testing.assert_array_equal(arrays["index"], 24 + np.arange(recovered.length))
    assert [(s["text"], s["frame_index"]) for s in recovered.subtasks] == [("reach", 0)]
    assert [(e["kind"], e["frame_index"]) for e in recovered.events] == [("pause", 3)]
    for frame in reader.episode_frames(2):
        for camera in CAMERAS:
            assert np.abs(frame.images[camera].astype(int) - episode.images(frame.frame_index)[camera]).mean() < 6
    # and recording continues after the recovered episode
    with make_writer(root) as writer:
        assert write_episode(writer, SyntheticEpisode("next", 4, 3)) == 3
    assert LeRobotDatasetReader(root).episode(3).length == 4


def test_interrupted_episode_without_frames_is_discarded_with_a_reason(tmp_path, caplog) -> None:
    root = tmp_path / "dataset"
    writer = make_writer(root)
    write_episode(writer, SyntheticEpisode("t", 3))
    writer.begin_episode("never recorded a frame")
    writer._release_lock()  # simulate the process dying here: no close(), the journal stays behind
    caplog.set_level(logging.WARNING, logger="policy.data.writer")
    with make_writer(root) as reopened:
        assert reopened.num_episodes == 1
    assert "discarding interrupted episode 1: no complete frame" in caplog.text
    assert not (root / layout.HEARTH_DIR / "staging").exists()


def test_crash_between_files_and_commit_leaves_no_trace(tmp_path, caplog) -> None:
    """Files of an episode written but never committed (crash before the episodes table was replaced) are removed."""
    root = tmp_path / "dataset"
    with make_writer(root) as writer:
        write_episode(writer, SyntheticEpisode("t", 3))
    orphan = root / layout.data_path(1)
    orphan.write_bytes(b"half written")
    (root / layout.video_path("head", 1)).write_bytes(b"junk")
    info = root / layout.INFO_PATH
    info.write_text(info.read_text().replace('"total_frames": 3', '"total_frames": 99'))  # stale derived file
    caplog.set_level(logging.WARNING, logger="policy.data.writer")
    with make_writer(root) as writer:
        assert writer.num_episodes == 1
    assert not orphan.exists() and "never committed" in caplog.text
    assert '"total_frames": 3' in info.read_text()  # derived files rebuilt from the committed episodes
    assert LeRobotDatasetReader(root).num_frames == 3
    assert LeRobotDatasetReader(root).fps == FPS
