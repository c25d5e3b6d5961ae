"""`hearth run` as a user runs it: a real subprocess, in-process worker with random tiny weights, sim robot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEARTH = str(Path(sys.executable).parent / "hearth")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(700)]


def test_hearth_run_prints_trace_outcome_and_episode(tmp_path) -> None:
    episodes = tmp_path / "episodes"
    result = subprocess.run(
        [
            HEARTH,
            "run",
            "put the can in the sink",
            "--robot",
            "sim-kitchen",
            "--random-preset",
            "tiny",
            "--robot-option",
            "camera_size=32",
            "--max-seconds",
            "10",
            "--episodes-dir",
            str(episodes),
            "--coach",
            "0.5:pick up the can",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "subtask trace:" in out
    assert re.search(r"\[coach \] pick up the can", out)
    assert "coaching: Policy: " in out and "→ Relabeled: pick up the can" in out
    assert re.search(r"outcome: failed \(time limit of 10s reached\)", out)
    match = re.search(r"episode: (\S+) \(episode (\d+)\)", out)
    assert match, out
    from policy.data.reader import LeRobotDatasetReader

    reader = LeRobotDatasetReader(match.group(1))
    info = next(e for e in reader.episodes if e.index == int(match.group(2)))
    assert info.length > 0 and info.outcome == "failed"


def test_hearth_run_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [HEARTH, "run", "x", "--coach", "soon:do it"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "SECONDS:utterance" in result.stderr
