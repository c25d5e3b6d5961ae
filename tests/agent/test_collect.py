"""`hearth collect` end to end: two simulator worker processes, merged in job order, resumable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import spawn

HEARTH = str(Path(sys.executable).parent / "hearth")
pytestmark = pytest.mark.slow


def run_collect(tmp_path: Path, out: Path, episodes: int, log: str) -> str:
    from robots.sim.tasks import TASKS

    args = [HEARTH, "collect", "--task", TASKS[0], "--task", TASKS[1], "--episodes", str(episodes), "--workers", "2",
            "--out", str(out), "--camera-size", "32", "--max-steps", "6", "--seed", "100", "--no-progress"]
    with spawn(args, tmp_path / log) as process:
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

    text = run_collect(tmp_path, out, 3, "second.log")  # resume: only the missing job runs
    assert "3 episodes, 18 frames (1 collected now, 1 merged" in text
    reader = LeRobotDatasetReader(out)
    assert [e.metadata["collect_seed"] for e in reader.episodes] == [100, 101, 102]
    assert reader.episode(2).task == TASKS[0]
