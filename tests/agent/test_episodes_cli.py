"""`hearth episodes list|show|export-rerun` on a real recorded dataset."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agent.cli import app
from tests.policy.data.synthetic import SyntheticEpisode, make_writer, write_episode


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("episodes")
    with make_writer(root) as writer:
        write_episode(
            writer,
            SyntheticEpisode(
                "put the cup in the sink",
                12,
                0,
                subtasks=[(0, "go to the table", "policy"), (6, "pick up the cup", "coach")],
                events=[
                    (6, "interjection", "Policy: go to the table → Relabeled: pick up the cup"),
                    (9, "estop", "operator"),
                ],
            ),
            "stopped-by-e-stop",
            None,
        )
        write_episode(writer, SyntheticEpisode("wipe the table", 5, 1), "succeeded", True)
    return root


def invoke(*args: str):
    return CliRunner().invoke(app, ["episodes", *args], catch_exceptions=False)


def test_list_and_show(root) -> None:
    result = invoke("list", "--root", str(root))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "stopped-by-e-stop" in lines[1] and "put the cup in the sink" in lines[1] and " 12 " in lines[1]
    assert "succeeded" in lines[2] and "yes" in lines[2]
    assert "2 episodes, 17 frames at 20 fps" in result.output
    rows = [
        json.loads(line) for line in invoke("list", "--root", str(root), "--json", "--task", "wipe").output.splitlines()
    ]
    assert rows == [
        {
            "index": 1,
            "task": "wipe the table",
            "length": 5,
            "duration_s": 0.25,
            "outcome": "succeeded",
            "success": True,
            "subtasks": 0,
            "events": 0,
            "recovered": False,
        }
    ]
    shown = invoke("show", "0", "--root", str(root)).output
    assert "pick up the cup  [coach]" in shown and "0.30s  #6" in shown and "estop    operator" in shown
    assert json.loads(invoke("show", "0", "--root", str(root), "--json").output)["subtasks"][1]["source"] == "coach"


def test_errors_are_clear(root, tmp_path) -> None:
    missing = CliRunner().invoke(app, ["episodes", "show", "7", "--root", str(root)])
    assert missing.exit_code == 2 and "no episode 7" in missing.output
    nothing = CliRunner().invoke(app, ["episodes", "list", "--root", str(tmp_path / "none")])
    assert nothing.exit_code == 2 and "not a LeRobotDataset" in nothing.output


def test_export_rerun_writes_every_frame_and_the_timeline(root, tmp_path) -> None:
    chunk = pytest.importorskip("rerun.chunk")
    out = tmp_path / "ep0.rrd"
    result = invoke("export-rerun", "0", "--root", str(root), "--out", str(out))
    assert result.exit_code == 0, result.output and out.stat().st_size > 0
    summary = str(chunk.RrdReader(str(out)).store().summary())
    rows = {line.split()[0]: int(line.split()[1][5:]) for line in summary.splitlines() if "rows=" in line}
    assert rows["/cameras/head"] == rows["/cameras/wrist"] == 12
    assert rows["/state/joint1"] == rows["/action/base_vx"] == rows["/chunk/id"] == 12
    assert rows["/subtask"] == 2 and rows["/events/interjection"] == 1 and rows["/events/estop"] == 1
