"""Robot bridge end to end: `hearth robot-bridge` serving the real sim-kitchen in a subprocess, driven by BridgeRobot.

One bridge process for the module (building the MuJoCo household costs seconds); each test closes its clients and
waits until the bridge has released the driver seat before it drives. Every wait has a generous timeout because
the machine is shared; nothing asserts on timing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgpack
import numpy as np
import pytest
import typer
from websockets.sync.client import connect

from agent.commands.robot_bridge import parse_robot_options
from hearth_wire.codec import WireError, packb, unpackb
from robots.bridge import BridgeAuthError, BridgeProtocolError, BridgeRobot, BridgeUnavailable
from robots.bridge_wire import decode_jpeg, encode_jpeg
from robots.registry import make_robot
from robots.safety import SafeRobot
from robots.sim.tasks import TASKS
from tests.support import PYTHON, free_port, spawn, wait_until

KEY = "bridge-test-key"
CAMERA_SIZE = 32
WAIT_S = 60.0  # generous: the test machine is heavily shared


class Bridge:
    def __init__(self, port: int, process) -> None:
        self.port = port
        self.process = process
        self.url = f"ws://127.0.0.1:{port}"

    def http(self, path: str, key: str | None = KEY) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if key:
            request.add_header("Authorization", f"Api-Key {key}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict:
        code, body = self.http("/status")
        assert code == 200, body
        return json.loads(body)

    def robot(self, **kwargs) -> BridgeRobot:
        """A client that is free to drive: the previous test's driver has been released."""
        wait_until(lambda: self.status()["driver"] is None, timeout=WAIT_S, what="the bridge to release its driver")
        return BridgeRobot(self.url, api_key=KEY, timeout_s=30.0, **kwargs)


def happened(robot: BridgeRobot, kind: str, since: float):
    """The first safety event of ``kind`` the robot side reported after ``since`` (the hello replays older ones)."""
    return next((e for e in list(robot.events) if e.kind == kind and e.timestamp >= since), None)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    log = tmp_path_factory.mktemp("bridge") / "bridge.log"
    args = [
        PYTHON, "-m", "agent.cli", "robot-bridge", "--robot", "sim-kitchen",
        "--robot-option", f"camera_size={CAMERA_SIZE}", "--robot-option", "cameras=[head, wrist]",
        "--robot-option", "seed=0", "--host", "127.0.0.1", "--port", str(port), "--api-key", KEY,
        "--watchdog-timeout-s", "0.5",
    ]  # fmt: skip
    with spawn(args, log, env={"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}) as process:
        server = Bridge(port, process)

        def healthy() -> bool:
            if not process.alive():
                raise AssertionError(f"robot bridge exited:\n{process.log_text()[-3000:]}")
            return server.http("/healthz", key=None) == (200, b"OK\n")

        wait_until(healthy, timeout=180.0, interval=0.25, what="robot bridge /healthz")
        yield server
        assert process.alive(), process.log_text()[-3000:]


# ---------------------------------------------------------------------------------------------- wire codec
def test_wire_roundtrip_and_validation() -> None:
    message = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.uint8(7), "c": [1, "x", None]}
    back = unpackb(packb(message))
    assert back["a"].dtype == np.float32 and back["a"].shape == (2, 3)
    np.testing.assert_array_equal(back["a"], message["a"])
    assert back["b"] == 7 and back["c"] == [1, "x", None]
    back["a"][0, 0] = 99.0  # decoded arrays are writable copies
    with pytest.raises(WireError, match="dtype"):
        packb({"x": np.array(["s"], dtype=object)})
    lying = msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 4, b"dtype": "<f4", b"shape": [1000]})
    with pytest.raises(WireError, match="needs 4000 bytes, got 4"):
        unpackb(lying)
    with pytest.raises(WireError, match=r"not allowed|unknown"):
        unpackb(msgpack.packb({b"__ndarray__": True, b"data": b"", b"dtype": "|O", b"shape": [0]}))
    with pytest.raises(WireError, match="not valid msgpack"):
        unpackb(b"\xc1")
    image = (np.indices((32, 32)).sum(axis=0) * 4 % 256).astype(np.uint8)[..., None].repeat(3, axis=2)
    jpeg = encode_jpeg(image, 90)
    assert len(jpeg) < image.nbytes
    restored = decode_jpeg(jpeg)
    assert restored.shape == image.shape and restored.dtype == np.uint8
    assert np.abs(restored.astype(int) - image).mean() < 10
    with pytest.raises(WireError, match="JPEG"):
        decode_jpeg(b"not a jpeg")


def test_robot_options_parse_as_yaml() -> None:
    assert parse_robot_options(["camera_size=32", "cameras=[head, wrist]", "task=put the cup in the sink"]) == {
        "camera_size": 32,
        "cameras": ["head", "wrist"],
        "task": "put the cup in the sink",
    }
    with pytest.raises(typer.BadParameter, match="key=value"):
        parse_robot_options(["camera_size"])


# ---------------------------------------------------------------------------------------------- handshake
def test_healthz_status_and_api_key(bridge: Bridge) -> None:
    assert bridge.http("/healthz", key=None) == (200, b"OK\n")
    code, body = bridge.http("/status", key=None)
    assert code == 401 and b"API key" in body
    assert bridge.http("/status", key="wrong")[0] == 401
    assert bridge.status()["robot"] == "sim-kitchen"
    with pytest.raises(BridgeAuthError, match="API key"):
        BridgeRobot(bridge.url, api_key="wrong", timeout_s=30.0)
    with pytest.raises(BridgeAuthError):
        BridgeRobot(bridge.url, timeout_s=30.0)
    with pytest.raises(BridgeUnavailable, match="cannot reach"):
        BridgeRobot(f"ws://127.0.0.1:{free_port()}", timeout_s=5.0)


# ---------------------------------------------------------------------------------------------- Robot interface
def test_describe_reset_observe_and_tasks(bridge: Bridge, shared_blind_robot) -> None:
    wait_until(lambda: bridge.status()["driver"] is None, timeout=WAIT_S, what="no driver")
    robot = make_robot("bridge", url=bridge.url, api_key=KEY, timeout_s=30.0)
    jpeg = BridgeRobot(bridge.url, api_key=KEY, timeout_s=30.0, jpeg_quality=85)
    try:
        assert isinstance(robot, BridgeRobot) and isinstance(robot, SafeRobot)
        desc, local = robot.describe(), shared_blind_robot.describe()
        assert desc.name == "sim-kitchen" and desc.robot_type == local.robot_type
        assert desc.actions == local.actions and desc.state == local.state
        assert desc.control_hz == local.control_hz and desc.tasks == local.tasks
        assert [(c.name, c.height, c.width) for c in desc.cameras] == [
            ("head", CAMERA_SIZE, CAMERA_SIZE),
            ("wrist", CAMERA_SIZE, CAMERA_SIZE),
        ]
        assert robot.watchdog_timeout_s == 0.5

        obs = robot.reset(seed=3)
        assert set(obs.images) == {"head", "wrist"}
        for image in obs.images.values():
            assert image.shape == (CAMERA_SIZE, CAMERA_SIZE, 3) and image.dtype == np.uint8
            assert image.std() > 0  # a rendered scene, not a blank frame
        assert obs.state.shape == (len(desc.state),) and obs.state_names == desc.state_names
        np.testing.assert_allclose(robot.current_state(), obs.state, atol=1e-6)

        again = robot.observe()
        compressed = jpeg.observe()  # a second connection may observe while another drives
        for name, image in again.images.items():
            assert compressed.images[name].shape == image.shape and compressed.images[name].dtype == np.uint8
            assert np.abs(compressed.images[name].astype(int) - image).mean() < 25

        robot.set_task(TASKS[1])
        with pytest.raises(ValueError, match="unknown"):
            robot.set_task("fly to the moon")
        progress = robot.task_progress()
        assert isinstance(progress, float) and 0.0 <= progress <= 1.0
        assert robot.task_success() is False
    finally:
        robot.close()
        jpeg.close()


def test_act_moves_the_robot_and_estop_latches(bridge: Bridge) -> None:
    robot = bridge.robot()
    observer = BridgeRobot(bridge.url, api_key=KEY, timeout_s=30.0)
    try:
        t0 = time.time()
        robot.reset(seed=1)
        start = robot.current_state()
        target = robot.hold_action()
        assert target is not None and target.shape == (12,)
        target[0] += 0.3  # arm_joint1, a position target in rad
        for _ in range(15):
            robot.act(target)
        moved = robot.current_state()
        assert moved[0] - start[0] > 0.2
        # the robot-side safety layer reports its interventions (velocity limit on the 0.3 rad jump) to the agent
        wait_until(lambda: happened(robot, "limit_velocity", t0), timeout=WAIT_S, what="limit event")

        with pytest.raises(BridgeProtocolError, match="driven by another agent"):
            observer.act(target)
        with pytest.raises(ValueError, match=r"shape \(12,\)"):
            robot.act(np.zeros(3))

        observer.estop("operator panel")  # an e-stop from any connection latches the robot side
        wait_until(lambda: robot.estopped, timeout=WAIT_S, what="the driver to see the e-stop")
        wait_until(lambda: happened(robot, "estop", t0), timeout=WAIT_S, what="estop event")
        assert bridge.status()["estopped"] is True
        target[0] -= 0.6
        for _ in range(10):
            robot.act(target)  # held still while latched
        assert abs(robot.current_state()[0] - moved[0]) < 0.02
        late = BridgeRobot(bridge.url, api_key=KEY, timeout_s=30.0)
        assert late.estopped  # a new connection learns the latch from the hello
        late.close()

        robot.reset_estop()
        assert not robot.estopped
        t1 = time.time()
        for _ in range(10):
            robot.act(target)
        assert robot.current_state()[0] < moved[0] - 0.1

        # the agent goes quiet (still connected): the robot-side watchdog stops the robot and says so
        wait_until(lambda: happened(robot, "watchdog", t1), timeout=WAIT_S, what="watchdog event")
    finally:
        robot.close()
        observer.close()


def test_bad_messages_get_clear_errors_and_the_server_keeps_serving(bridge: Bridge) -> None:
    wait_until(lambda: bridge.status()["driver"] is None, timeout=WAIT_S, what="no driver")
    with connect(bridge.url, additional_headers={"Authorization": f"Api-Key {KEY}"}, open_timeout=30) as ws:
        hello = unpackb(ws.recv(timeout=30))
        assert hello["type"] == "hello" and hello["protocol"] == 1 and hello["robot"]["name"] == "sim-kitchen"

        def ask(frame: bytes | str) -> dict:
            ws.send(frame)
            while True:
                message = unpackb(ws.recv(timeout=30))
                if message["type"] == "reply":
                    return message

        reply = ask(b"\xc1\x00garbage")
        assert reply["ok"] is False and reply["error_type"] == "bad_request" and "not valid msgpack" in reply["error"]
        assert "text frame" in ask("hello?")["error"]
        assert "must be a map" in ask(packb([1, 2]))["error"]
        reply = ask(packb({"id": 7, "op": "fly"}))
        assert reply["id"] == 7 and "unknown op 'fly'" in reply["error"] and "observe" in reply["error"]
        reply = ask(packb({"id": 8, "op": "act", "action": "forward"}))
        assert reply["id"] == 8 and reply["error_type"] == "bad_request" and "numeric" in reply["error"]
        reply = ask(packb({"id": 9, "op": "act", "action": np.zeros(3)}))
        assert reply["error_type"] == "value_error" and "shape (12,)" in reply["error"]
        lying = msgpack.packb(
            {
                "id": 10,
                "op": "act",
                "action": {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "<f8", b"shape": [12]},
            }
        )
        assert "needs 96 bytes, got 8" in ask(lying)["error"]
        assert "jpeg_quality" in ask(packb({"id": 11, "op": "observe", "jpeg_quality": 500}))["error"]
        assert "seed" in ask(packb({"id": 12, "op": "reset", "seed": "abc"}))["error"]

        reply = ask(packb({"id": 13, "op": "describe"}))
        assert reply["ok"] is True and reply["id"] == 13 and reply["result"]["name"] == "sim-kitchen"
    # and everyone else is still served
    robot = bridge.robot()
    try:
        assert robot.observe().state.shape == (12,)
    finally:
        robot.close()


def test_killed_agent_the_robot_holds_and_a_safety_event_is_reported(bridge: Bridge, tmp_path: Path) -> None:
    wait_until(lambda: bridge.status()["driver"] is None, timeout=WAIT_S, what="no driver")
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            import numpy as np
            from robots.bridge import BridgeRobot

            robot = BridgeRobot({bridge.url!r}, api_key={KEY!r}, timeout_s=30.0)
            robot.reset(seed=2)
            action = robot.hold_action()
            action[9] = 0.3  # drive the base forward
            for tick in range(100000):
                robot.act(action)
                if tick == 5:
                    print("driving", flush=True)
                time.sleep(0.05)
            """
        )
    )
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    observer = BridgeRobot(bridge.url, api_key=KEY, timeout_s=30.0)
    try:
        with spawn([sys.executable, str(script)], tmp_path / "agent.log", env=env) as agent:
            wait_until(
                lambda: "driving" in agent.log_text(), timeout=WAIT_S, what=f"the agent to drive: {agent.log_path}"
            )
            status = bridge.status()
            assert status["driver"] is not None and status["last_command"] == "act"
            killed_at = time.time()
            agent.signal_group(signal.SIGKILL)
            agent.popen.wait(timeout=30)

        event = wait_until(
            lambda: happened(observer, "bridge_disconnect", killed_at),
            timeout=WAIT_S,
            what="a bridge_disconnect safety event",
        )
        assert event.details["held"] is True and "hold" in event.message
        status = bridge.status()
        assert status["driver"] is None and status["last_command"] == "hold"
        assert any(e["kind"] == "bridge_disconnect" for e in status["recent_events"])
        # the robot stays where the hold left it: nobody drives, nothing moves
        held = observer.current_state()
        np.testing.assert_allclose(observer.current_state(), held, atol=1e-6)
        observer.hold()  # and the driver seat is free for the next agent
    finally:
        observer.close()


def test_orchestrator_drives_the_robot_side_safety_layer(bridge: Bridge) -> None:
    """RobotRuntime takes the bridge as the safety layer: its e-stop latches on the robot, robot events reach the bus."""
    from agent.events import EventBus
    from agent.orchestrator import RobotRuntime
    from agent.system2 import CoachOnlySystem2

    bus = EventBus()
    subscription = bus.subscribe(kinds=["safety"])
    robot = bridge.robot()
    try:
        runtime = RobotRuntime("arm1", robot, policy=object(), system2=CoachOnlySystem2(), recorder=None, bus=bus)
        assert runtime.robot is robot  # no second, blind safety layer on the agent side
        since = time.time()
        runtime.estop("api e-stop")
        assert robot.estopped and bridge.status()["estopped"] is True

        def robot_side_estop():
            event = subscription.get(timeout=1.0)
            return event if event is not None and event.data.get("kind") == "estop" and event.ts >= since - 1 else None

        event = wait_until(robot_side_estop, timeout=WAIT_S, what="the robot's estop event on the agent's bus")
        assert event.robot_id == "arm1" and "api e-stop" in event.data["message"]
        robot.reset_estop()
        assert bridge.status()["estopped"] is False
    finally:
        subscription.close()
        robot.close()
