"""The console's pieces that need no browser: URL handling, the HTML components' embedded config, the timeline
normalization the player draws from, and `hearth console`'s Streamlit invocation."""

from __future__ import annotations

import base64
import json
import re

import pytest
from typer.testing import CliRunner

from ui.api_client import live_ws_url, normalize_base_url
from ui.components import episode_player_html, live_view_html, normalize_timeline
from ui.session import Need
from ui.views.live import coaching_line, start_message
from ui.views.models import RobotInfo, StatusView, TaskView


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://api:8080/", "http://api:8080"),
        ("https://robots.example/hearth/api/v1", "https://robots.example/hearth"),
    ],
)
def test_base_urls_are_normalized(given, expected):
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://x", "http://"])
def test_bad_api_urls_are_rejected(bad):
    with pytest.raises(ValueError):
        normalize_base_url(bad)


def test_live_ws_url_carries_the_ticket_and_options():
    url = live_ws_url("https://h.example/base", "kitchen 1", ticket="t1ck+t", fps="15", size=256)
    assert url.startswith("wss://h.example/base/api/v1/robots/kitchen%201/live?")
    assert "ticket=t1ck%2Bt" in url and "fps=15" in url and "size=256" in url and "token" not in url


def _embedded(html: str, marker: str) -> dict:
    match = re.search(rf"const {marker} = (.*?);\n", html)
    assert match, f"no {marker} in the page"
    return json.loads(match.group(1))


def test_live_view_embeds_its_config_safely():
    html = live_view_html("http://127.0.0.1:8080", "</script><b>", "tick3t", fps=12)
    assert "</script><b>" not in html  # a hostile robot id cannot close the script element
    config = _embedded(html, "CONFIG")
    assert config["robotId"] == "</script><b>"
    assert config["wsUrl"].startswith("ws://127.0.0.1:8080/api/v1/robots/") and "fps=12" in config["wsUrl"]
    # a single-use ticket opens the socket; the bearer token never goes into a URL (issue 19)
    assert "ticket=tick3t" in config["wsUrl"] and "token=" not in config["wsUrl"]


def test_timeline_becomes_segments_and_marks():
    timeline = {  # the API's spelling (GET /episodes/{robot}/{index}/timeline): frame_index and text only
        "subtasks": [
            {"text": "open the tap", "source": "coach", "frame_index": 40, "timestamp": 2.0},
            {"text": "pick up the cup", "source": "policy", "frame_index": 0, "timestamp": 0.0},
            {"text": "put it down", "source": "policy", "frame_index": 60, "timestamp": 3.0},
        ],
        "events": [
            {"kind": "interjection", "text": "Policy: a → Relabeled: b", "frame_index": 40, "timestamp": 2.0},
            {"kind": "estop", "text": None, "frame_index": 70, "timestamp": 3.5},
        ],
    }
    subtasks, events = normalize_timeline(timeline, length=100)
    assert [(s["text"], s["source"], s["start_frame"], s["end_frame"]) for s in subtasks] == [
        ("pick up the cup", "policy", 0, 40),
        ("open the tap", "coach", 40, 60),
        ("put it down", "policy", 60, 100),
    ]
    assert events == [
        {"kind": "interjection", "text": "Policy: a → Relabeled: b", "frame": 40},
        {"kind": "estop", "text": "", "frame": 70},
    ]


def test_timeline_refuses_other_spellings():
    """One spelling only: a renamed field in the API must fail loudly here, not draw everything at frame 0."""
    with pytest.raises(KeyError):
        normalize_timeline({"subtasks": [{"content": "x", "source": "policy", "frame": 3}], "events": []}, 10)


def test_robot_titles_and_placeholders_fit_the_robot():
    kitchen = RobotInfo.parse(
        {"id": "kitchen", "description": {"name": "sim-kitchen", "tasks": ["put the can in the sink", "wipe it"]}}
    )
    assert kitchen.title == "kitchen (sim-kitchen)"
    assert RobotInfo.parse({"id": "sim-kitchen", "description": {"name": "sim-kitchen"}}).title == "sim-kitchen"
    assert RobotInfo.parse({"id": "arm", "description": None}).title == "arm"
    # the coaching example names the scene's object (issue 17: it named a cup in a scene built around a can)
    assert kitchen.coaching_example() == "e.g. pick up the can"
    assert kitchen.task_example() == "e.g. put the can in the sink"  # reads as an example, not a filled-in value
    assert (
        RobotInfo.parse({"id": "arm", "description": {"tasks": ["wave"]}}).coaching_example() == "e.g. open the gripper"
    )


def test_start_message_says_what_the_task_is_doing():
    def task(state: str, reason: str | None = None) -> TaskView:
        return TaskView(id="t1", text="put the can in the sink", state=state, reason=reason)

    assert start_message(task("running")) == "Task running: put the can in the sink"
    assert start_message(task("queued")).startswith("Task queued (another task is active")
    assert (
        start_message(task("paused", "e-stop: operator")) == "Task paused: put the can in the sink (e-stop: operator)"
    )


def test_status_reads_typed_fields_and_ignores_unknown_ones():
    status = StatusView.model_validate(
        {
            "task_id": "t",
            "task_state": "paused",
            "reason": "worker late by 900 ms",
            "coaching": {"coached": "pick up the can", "remaining_s": 12.4},
            "a_field_from_a_newer_api": 1,
        }
    )
    assert (status.task_state, status.reason, status.estopped) == ("paused", "worker late by 900 ms", False)
    assert coaching_line(status.coaching) == "**Coached:** pick up the can · releases in **12 s**"


def test_every_permission_the_console_checks_is_one_the_api_grants():
    from agent.api.auth import Permission

    assert {need.value for need in Need} <= {p.value for p in Permission}


def test_no_permission_list_means_no_controls():
    from ui.api_client import Identity

    who = Identity(id="x", name="old api", role="operator")  # a response without `permissions`
    assert not any(who.can(need.value) for need in Need)


def test_player_embeds_videos_plots_and_timeline():
    fake_mp4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64 + b"avc1" + b"\x00" * 32
    data = {
        "fps": 10.0,
        "length": 20,
        "timestamp": [0.0, 1.9],
        "action": [[0.1], [0.2]],
        "state": [[1.0], [2.0]],
        "action_names": ["a"],
        "state_names": ["s"],
    }
    html = episode_player_html(
        {"robot_id": "r", "episode_index": 3, "length": 20},
        {"subtasks": [{"text": "x", "source": "policy", "frame_index": 0, "timestamp": 0.0}], "events": []},
        data,
        {"head": fake_mp4},
    )
    payload = _embedded(html, "EP")
    assert payload["duration"] == pytest.approx(2.0) and payload["length"] == 20
    [camera] = payload["cameras"]
    assert camera["codec"] == "H.264"
    assert base64.b64decode(camera["src"].split(",", 1)[1]) == fake_mp4
    assert payload["subtasks"] == [{"text": "x", "source": "policy", "start_frame": 0, "end_frame": 20}]
    assert payload["data"]["action"] == [[0.1], [0.2]]


def test_console_runs_streamlit_headless_without_telemetry():
    from agent.commands.console import APP, streamlit_args

    args = streamlit_args("127.0.0.1", 8999)
    pairs = dict(zip(args[2::2], args[3::2], strict=False))
    assert args[:2] == ["run", str(APP)] and APP.is_file()
    assert pairs["--server.headless"] == "true" and pairs["--browser.gatherUsageStats"] == "false"
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8999"


def test_console_cli_rejects_a_bad_api_url():
    from agent.cli import app

    result = CliRunner().invoke(app, ["console", "--api-url", "ftp://nowhere"])
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.output
    help_text = CliRunner().invoke(app, ["console", "--help"]).output
    assert "--api-url" in help_text and "--browser-api-url" in help_text


def test_console_imports_nothing_from_the_agent_policy_or_robots():
    import ast
    from pathlib import Path

    import ui

    forbidden = {"agent", "policy", "robots"}
    offenders = []
    for path in Path(ui.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
