"""The console's API client against the real API (uvicorn on loopback, real SQLite, a real LeRobot dataset),
including the endpoints added for the console: who am I, per-frame episode data, outcome labels, Rerun export.
No browser and no robot: the dataset is written with the real writer."""

from __future__ import annotations

import numpy as np
import pytest

from agent.api.app import create_app
from agent.api.auth import ROLE_PERMISSIONS, Role
from agent.api.episodes_index import index_episode, open_reader, sync_robot
from agent.settings import ApiConfig
from agent.store import Store
from policy.data.writer import LeRobotDatasetWriter
from robots.types import Observation
from tests.agent.api.support import ServedApp, make_tokens
from tests.support import free_port
from ui.api_client import ApiClient, ApiError, ApiUnreachable, live_ws_url

ROBOT = "kitchen"
FRAMES = 30
STATE_NAMES = ["joint_a", "joint_b", "gripper"]
ACTION_NAMES = ["joint_a", "joint_b"]


def write_dataset(root):
    rng = np.random.default_rng(0)
    states = rng.normal(size=(FRAMES, len(STATE_NAMES))).astype(np.float32)
    actions = rng.normal(size=(FRAMES, len(ACTION_NAMES))).astype(np.float32)
    writer = LeRobotDatasetWriter(
        root,
        fps=10.0,
        robot_type="test",
        camera_shapes={"head": (32, 32), "wrist": (32, 32)},
        state_names=STATE_NAMES,
        action_names=ACTION_NAMES,
    )
    writer.begin_episode("put the cup in the sink")
    for i in range(FRAMES):
        if i == 0:
            writer.set_subtask("pick up the cup", "policy")
        if i == 12:
            writer.add_event("interjection", "Policy: pick up the cup → Relabeled: open the tap")
            writer.set_subtask("open the tap", "coach")
        image = np.full((32, 32, 3), 8 * i, dtype=np.uint8)
        writer.add_frame({"head": image, "wrist": 255 - image}, states[i], actions[i])
    writer.end_episode("succeeded", True)
    writer.close()
    return states, actions


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api-client")
    root = folder / "episodes" / ROBOT
    states, actions = write_dataset(root)
    store = Store(f"sqlite:///{folder / 'hearth.db'}")
    tokens = make_tokens(store)
    for info in open_reader(root).episodes:
        index_episode(store, ROBOT, root, info)
    app = create_app(ApiConfig(database_url=f"sqlite:///{folder / 'hearth.db'}"), runtimes={}, store=store)
    with ServedApp(app) as server:
        yield server, tokens, store, root, states, actions


def test_whoami_reports_role_and_the_apis_permissions(served):
    server, tokens, *_ = served
    for role in ("viewer", "operator", "automation", "admin"):
        with ApiClient(server.url, tokens[role]) as client:
            who = client.whoami()
        assert who.role == role
        assert who.permissions == {p.value for p in ROLE_PERMISSIONS[Role(role)]}
    with ApiClient(server.url, tokens["viewer"]) as viewer, ApiClient(server.url, tokens["operator"]) as operator:
        assert not viewer.whoami().can("estop") and operator.whoami().can("estop")
        assert operator.whoami().can("episodes:label") and not viewer.whoami().can("episodes:label")


def test_episode_list_timeline_and_data_match_the_dataset(served):
    server, tokens, _store, _root, states, actions = served
    with ApiClient(server.url + "/api/v1/", tokens["viewer"]) as client:  # a URL ending in /api/v1 is accepted too
        episodes = client.episodes(robot_id=ROBOT, task="cup")
        assert [(e["episode_index"], e["length"], e["outcome"]) for e in episodes] == [(0, FRAMES, "succeeded")]
        assert client.episodes(task="no such task") == []
        timeline = client.timeline(ROBOT, 0)
        assert [(s["text"], s["source"], s["frame_index"]) for s in timeline["subtasks"]] == [
            ("pick up the cup", "policy", 0),
            ("open the tap", "coach", 12),
        ]
        assert [e["frame_index"] for e in timeline["events"] if e["kind"] == "interjection"] == [12]
        data = client.episode_data(ROBOT, 0)
        assert data["length"] == FRAMES and data["fps"] == 10.0
        assert data["state_names"] == STATE_NAMES and data["action_names"] == ACTION_NAMES
        np.testing.assert_allclose(data["state"], states, atol=1e-6)
        np.testing.assert_allclose(data["action"], actions, atol=1e-6)
        np.testing.assert_allclose(data["timestamp"], np.arange(FRAMES) / 10.0, atol=1e-6)
        few = client.episode_data(ROBOT, 0, max_points=5)
        assert few["frame_index"] == [0, 7, 14, 22, 29]
        np.testing.assert_allclose(few["action"], actions[[0, 7, 14, 22, 29]], atol=1e-6)
        video = client.episode_video(ROBOT, 0, "head")
        assert video[4:8] == b"ftyp" and len(video) > 500
        with pytest.raises(ApiError) as missing:
            client.episode_data(ROBOT, 7)
        assert missing.value.status == 404 and missing.value.code == "episode_not_found"


def test_outcome_label_needs_permission_and_survives_reindexing(served):
    server, tokens, store, root, *_ = served
    with ApiClient(server.url, tokens["viewer"]) as viewer:
        with pytest.raises(ApiError) as refused:
            viewer.label_episode(ROBOT, 0, "failed", False)
        assert refused.value.status == 403 and refused.value.code == "forbidden"
    with ApiClient(server.url, tokens["operator"]) as operator:
        labeled = operator.label_episode(ROBOT, 0, "failed", False)
        assert (labeled["outcome"], labeled["success"]) == ("failed", False)
        with pytest.raises(ApiError) as empty:
            operator.label_episode(ROBOT, 0, "   ", None)
        assert empty.value.status == 422
        assert sync_robot(store, ROBOT, root) == 1  # what an API restart does
        assert (operator.episode(ROBOT, 0)["outcome"], operator.episode(ROBOT, 0)["success"]) == ("failed", False)
        assert [e["episode_index"] for e in operator.episodes(outcome="failed")] == [0]
        operator.label_episode(ROBOT, 0, "succeeded", True)
        assert operator.episode(ROBOT, 0)["success"] is True


def test_rerun_export_is_a_rerun_recording(served):
    server, tokens, *_ = served
    with ApiClient(server.url, tokens["viewer"], timeout_s=60) as client:
        rrd = client.export_rerun(ROBOT, 0)
    assert rrd[:3] == b"RRF" and len(rrd) > 1000


def test_live_ticket_is_issued_to_roles_that_may_watch(served):
    server, tokens, *_ = served
    with ApiClient(server.url, tokens["viewer"]) as viewer:
        first, second = viewer.live_ticket(), viewer.live_ticket()
    assert isinstance(first, str) and len(first) >= 32 and first != second
    url = live_ws_url("http://h.example:8000", ROBOT, ticket=first, fps=5)
    assert url == f"ws://h.example:8000/api/v1/robots/{ROBOT}/live?ticket={first}&fps=5"
    with ApiClient(server.url, tokens["automation"]) as automation, pytest.raises(ApiError) as refused:
        automation.live_ticket()
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    with pytest.raises(ValueError, match="needs a ticket"):
        live_ws_url("http://h.example:8000", ROBOT, ticket="")


def test_unreachable_api_and_bad_tokens_are_distinct_errors(served):
    server, *_ = served
    with ApiClient(f"http://127.0.0.1:{free_port()}", "x", timeout_s=2) as nowhere, pytest.raises(ApiUnreachable) as e:
        nowhere.robots()
    assert "not reachable" in str(e.value)
    with ApiClient(server.url, "wrong-token") as client, pytest.raises(ApiError) as bad:
        client.whoami()
    assert bad.value.status == 401 and bad.value.code == "unauthorized"
    with ApiClient(server.url) as anonymous:
        assert anonymous.health()["status"] == "ok"


def test_a_viewer_leaving_does_not_cancel_a_frame_another_viewer_waits_for():
    """Two console tabs watch one robot: their JPEG encodes are shared, and closing one tab while the encode is
    still queued must not cancel it for the other (it did: the other socket died and had to reconnect)."""
    import asyncio
    import threading

    from agent.api.live_hub import LiveHub

    hub = LiveHub(bus=None, encoder_threads=1)
    release = threading.Event()
    hub._encoder.submit(release.wait, 10)  # keep the encoder busy so the shared encode stays queued
    obs = Observation(timestamp=1.0, images={"head": np.zeros((32, 32, 3), np.uint8)}, state=np.zeros(2, np.float32))

    async def scenario():
        leaving = asyncio.create_task(hub.frame(ROBOT, obs, "head", None, 80))
        staying = asyncio.create_task(hub.frame(ROBOT, obs, "head", None, 80))
        await asyncio.sleep(0.05)
        leaving.cancel()
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.wait_for(staying, timeout=10)

    import base64
    import json

    try:
        message = json.loads(asyncio.run(scenario()))
    finally:
        release.set()
        hub.stop()
    assert message["type"] == "frame" and message["camera"] == "head"
    assert base64.b64decode(message["data"])[:2] == b"\xff\xd8" and (message["width"], message["height"]) == (32, 32)
    assert hub.frames_encoded == 1
