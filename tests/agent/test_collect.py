"""`hearth collect` end to end: two simulator worker processes, merged in job order, resumable."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.support import spawn, wait_until

HEARTH = str(Path(sys.executable).parent / "hearth")
pytestmark = pytest.mark.slow


def collect_args(out: Path, episodes: int, workers: int, max_steps: int) -> list[str]:
    from robots.sim.tasks import TASKS

    return [
        HEARTH,
        "collect",
        "--task",
        TASKS[0],
        "--task",
        TASKS[1],
        "--episodes",
        str(episodes),
        "--workers",
        str(workers),
        "--out",
        str(out),
        "--camera-size",
        "32",
        "--max-steps",
        str(max_steps),
        "--seed",
        "100",
        "--no-progress",
    ]


def run_collect(tmp_path: Path, out: Path, episodes: int, log: str, workers: int = 2, max_steps: int = 6) -> str:
    with spawn(collect_args(out, episodes, workers, max_steps), tmp_path / log) as process:
        process.popen.wait(timeout=280)
        text = process.log_text()
    assert process.popen.returncode == 0, text
    return text


def test_collect_two_workers_then_resume(tmp_path) -> None:
    from policy.data.reader import LeRobotDatasetReader
    from robots.sim.tasks import TASKS

    out = tmp_path / "demos"
    text = run_collect(tmp_path, out, 2, "first.log")
    assert "2 episodes, 12 frames (2 collected now, 2 merged" in text
    reader = LeRobotDatasetReader(out)
    assert [e.metadata["collect_seed"] for e in reader.episodes] == [100, 101]  # job order, whatever the timing
    assert [e.task for e in reader.episodes] == [TASKS[0], TASKS[1]]
    assert all(e.length == 6 and e.outcome == "timeout" and e.success is False for e in reader.episodes)
    first = reader.episode(0)
    assert first.subtasks and first.subtasks[0]["source"] == "expert" and first.subtasks[0]["frame_index"] == 0
    assert reader.camera_names == ["head", "wrist"] and len(reader.action_names) == len(reader.state_names) == 12
    frames = list(reader.episode_frames(1))
    assert frames[0].images["head"].shape == (32, 32, 3) and frames[-1].index == 11
    assert not (out / ".hearth" / "collect").exists()  # worker datasets are gone once merged


def test_collect_killed_mid_episode_resumes_without_losing_or_duplicating(tmp_path) -> None:
    """SIGKILL the whole collection (main process and worker) while the worker records its second episode: the
    rerun merges the finished episode, drops the interrupted one, and collects only the missing job."""
    from policy.data.reader import LeRobotDatasetReader

    out = tmp_path / "demos"
    worker = out / ".hearth" / "collect" / "worker-0"
    staging = worker / ".hearth" / "staging"

    def second_episode_running() -> bool:
        """Episode 0 committed and episode 1's journal has frames."""
        try:
            header = json.loads((staging / "header.json").read_text())
            return (
                header["episode_index"] == 1
                and (staging / "frames.bin").stat().st_size > 0
                and (worker / "meta" / "episodes" / "chunk-000" / "file-000.parquet").exists()
            )
        except (OSError, ValueError, KeyError):
            return False

    with spawn(collect_args(out, 2, 1, 40), tmp_path / "killed.log") as process:
        wait_until(lambda: second_episode_running() or not process.alive(), timeout=240, what="the second episode")
        assert process.alive(), process.log_text()
        process.signal_group(signal.SIGKILL)
        process.popen.wait(timeout=10)
    assert not (out / "meta" / "info.json").exists()  # nothing merged yet: the kill came first

    text = run_collect(tmp_path, out, 2, "resumed.log", workers=1, max_steps=40)
    assert "(1 collected now, 2 merged" in text, text
    reader = LeRobotDatasetReader(out)
    assert [e.metadata["collect_seed"] for e in reader.episodes] == [100, 101]
    assert not any(e.recovered for e in reader.episodes)
    assert [e.index for e in reader.episodes] == [0, 1] and reader.episodes[1].from_index == reader.episodes[0].length


def test_merge_keeps_one_episode_per_seed_and_recovery_counts_ended_episodes(tmp_path) -> None:
    """No simulator: worker datasets built directly. An episode whose end was recorded before a kill counts as done;
    a seed present twice (re-collected after such a kill) is merged once."""
    from agent.commands.collect import _done_seeds, _merge, _recover
    from policy.data.reader import LeRobotDatasetReader
    from tests.policy.data.synthetic import SyntheticEpisode, make_writer

    def record(writer, seed: int, length: int = 3) -> None:
        episode = SyntheticEpisode("t", length, seed)
        writer.begin_episode("t", metadata={"collect_seed": seed})
        for i in range(length):
            writer.add_frame(episode.images(i), episode.state(i), episode.action(i))

    a, b, out = tmp_path / "worker-0", tmp_path / "worker-1", tmp_path / "out"
    with make_writer(a) as writer:
        for seed in (100, 100, 102):
            record(writer, seed)
            writer.end_episode("timeout", False)
    writer = make_writer(b)
    record(writer, 101, 4)
    writer._running.journal.append_language({"type": "end", "outcome": "timeout", "success": False})
    writer._release_lock()  # killed after the end was journaled, before the commit
    assert _done_seeds(b) == set()
    _recover([a, b])
    assert _done_seeds(b) == {101}
    assert _merge(out, [a, b]) == 3
    merged = LeRobotDatasetReader(out)
    assert [e.metadata["collect_seed"] for e in merged.episodes] == [100, 101, 102]
    assert merged.episode(1).length == 4 and merged.episode(1).outcome == "timeout"
    assert _merge(out, [a, b]) == 0  # a rerun merges nothing twice
