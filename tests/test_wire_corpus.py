"""One malformed-frame corpus, run over both sides of the wire: the policy worker and the robot bridge.

The two servers once had their own codecs that had drifted apart (dtype limits, dims, map keys). Both now read
frames with hearth_wire/codec.py; this corpus proves they refuse the same frames with the same words, first at the
decoder each side calls and then over real WebSockets: the worker answers a text frame and closes 1011, the bridge
answers an error reply and keeps serving. Valid frames decode the same on both sides and equal openpi's bytes.
"""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from openpi_client import msgpack_numpy
from websockets.sync.client import connect

from hearth_wire.codec import MAX_NDIM, WireError, packb, unpackb
from policy import client as policy_client
from policy import server as policy_server
from robots import bridge as bridge_client
from robots import bridge_server

KEY = "corpus-key"


def _array(dtype: object, shape: object, data: object, **extra: object) -> bytes:
    return msgpack.packb(
        {"id": 1, "op": "act", "x": {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape, **extra}}
    )


def _scalar(dtype: object, data: object) -> bytes:
    return msgpack.packb({"id": 1, "op": "act", "x": {b"__npgeneric__": True, b"data": data, b"dtype": dtype}})


# (name, frame, what the error must say)
CORPUS: list[tuple[str, bytes, str]] = [
    ("reserved byte", b"\xc1", "not valid msgpack"),
    ("truncated map", b"\x81\xa1a", "not valid msgpack"),
    ("two objects", b"\x01\x02", "more than one"),
    ("short data", _array("<f4", [3], b"\x00"), "needs 12 bytes"),
    ("long data", _array("<u1", [2], b"\x00" * 3), "needs 2 bytes"),
    ("lying shape", _array("<f4", [1000], b"\x00" * 4), "needs 4000 bytes"),
    ("negative dim", _array("<f4", [-1], b""), "non-negative"),
    ("bool dim", _array("<f4", [True], b"\x00" * 4), "non-negative"),
    ("float dim", _array("<f4", [1.0], b"\x00" * 4), "non-negative"),
    ("shape not a list", _array("<f4", 3, b"\x00" * 12), "shape must be a list"),
    ("too many dims", _array("<f4", [1] * (MAX_NDIM + 1), b"\x00" * 4), f"at most {MAX_NDIM}"),
    ("object dtype", _array("|O", [1], b"\x00" * 8), "not allowed"),
    ("void dtype", _array("V8", [1], b"\x00" * 8), "not allowed"),
    ("complex dtype", _array("<c8", [1], b"\x00" * 8), "not allowed"),
    ("datetime dtype", _array("<M8[s]", [1], b"\x00" * 8), "not allowed"),
    ("record dtype", _array("[('a', '<f4')]", [1], b"\x00" * 4), "unknown array dtype"),
    ("unknown dtype", _array("nonsense", [1], b"\x00"), "unknown array dtype"),
    ("long dtype string", _array("<f4" + " " * 30, [1], b"\x00" * 4), "short numpy dtype"),
    ("dtype not a string", _array(7, [1], b"\x00"), "short numpy dtype"),
    ("data as text", _array("<f4", [2], "text"), "must be msgpack bin"),
    (
        "data missing",
        msgpack.packb({"x": {b"__ndarray__": True, b"dtype": "<f4", b"shape": [1]}}),
        "must be msgpack bin",
    ),
    ("scalar from a map", _scalar("<f4", {"a": 1}), "scalar data must be"),
    ("scalar out of range", _scalar("|u1", 300), "cannot make a |u1 scalar"),
    ("integer map key", msgpack.packb({1: 2}), "not valid msgpack"),
]

VALID = [
    np.zeros((4, 5, 3), dtype=np.uint8),
    np.arange(12, dtype=np.float64).reshape(3, 4),
    np.array([True, False]),
    np.array(["ab", "cde"]),
    np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2],
    np.zeros((0, 7), dtype=np.float32),
    np.float32(1.5),
    np.int64(-7),
]

# The decoder each side actually calls: worker and its client, bridge server and its client.
SIDES = {
    "policy worker": policy_server.unpackb,
    "policy client": policy_client.unpackb,
    "robot bridge": bridge_server.unpackb,
    "bridge client": bridge_client.unpackb,
}


def _refusal(decode, frame: bytes) -> str:
    with pytest.raises(WireError) as caught:
        decode(frame)
    return str(caught.value)


@pytest.mark.parametrize(("name", "frame", "match"), CORPUS, ids=[c[0] for c in CORPUS])
def test_every_side_refuses_the_frame_with_the_same_words(name: str, frame: bytes, match: str) -> None:
    texts = {side: _refusal(decode, frame) for side, decode in SIDES.items()}
    assert len(set(texts.values())) == 1, texts
    assert match in texts["policy worker"]


@pytest.mark.parametrize("value", VALID, ids=lambda v: f"{np.asarray(v).dtype}{np.shape(v)}")
def test_valid_frames_equal_openpi_bytes_and_decode_alike_on_every_side(value: object) -> None:
    message = {"x": value, "nested": {"list": [1, "a", None, 2.5], "flag": True}}
    frame = packb(message)
    assert frame == msgpack_numpy.packb(message)
    for side, decode in SIDES.items():
        decoded = decode(frame)
        np.testing.assert_array_equal(decoded["x"], value, err_msg=side)
        assert np.asarray(decoded["x"]).dtype == np.asarray(value).dtype, side
        assert decoded["nested"] == {"list": [1, "a", None, 2.5], "flag": True}


def test_bytes_are_openpis_documented_packing() -> None:
    """{"state": np.arange(3, dtype=np.float32)} byte for byte as openpi packs it (Physical-Intelligence/openpi,
    packages/openpi-client/src/openpi_client/msgpack_numpy.py: bin keys, dtype str, shape as an array)."""
    expected = (
        bytes.fromhex("81a5") + b"state" + bytes.fromhex("84c40b") + b"__ndarray__" + bytes.fromhex("c3c404") + b"data"
        + bytes.fromhex("c40c") + np.arange(3, dtype=np.float32).tobytes() + bytes.fromhex("c405") + b"dtype"
        + bytes.fromhex("a3") + b"<f4" + bytes.fromhex("c405") + b"shape" + bytes.fromhex("9103")
    )  # fmt: skip
    assert packb({"state": np.arange(3, dtype=np.float32)}) == expected


def test_decoded_arrays_are_writable_copies() -> None:
    frame = packb({"x": np.arange(4, dtype=np.int16)})
    array = unpackb(frame)["x"]
    array[0] = 9  # a read-only view on the frame would raise here
    assert array.flags.owndata and unpackb(frame)["x"][0] == 0


def test_text_frames_are_not_messages() -> None:
    with pytest.raises(WireError, match="binary"):
        unpackb("hello")  # type: ignore[arg-type]


def test_unsendable_values_raise_wire_error() -> None:
    for bad in (np.array([object()], dtype=object), np.array([1j]), object()):
        with pytest.raises(WireError, match="cannot encode"):
            packb({"x": bad})


# ------------------------------------------------------------------------------------------- over real servers
@pytest.fixture(scope="module")
def worker_url():
    from policy.inference import Pi05Policy
    from policy.server import PolicyServer

    policy = Pi05Policy.build_random(
        "tiny", camera_names=("head",), state_names=["j0", "j1"], action_names=["a0", "a1"], control_hz=20.0,
        seed=0, action_horizon=4, num_steps=2,
    )  # fmt: skip
    with PolicyServer(policy, port=0, api_keys=[KEY], warmup=False).run_in_thread() as port:
        yield f"ws://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def bridge_url():
    from robots.safety import SafeRobot
    from robots.sim.kitchen import SimKitchen
    from robots.sim.tasks import TASKS

    robot = SafeRobot(SimKitchen(task=TASKS[0], render=False, seed=0), watchdog_timeout_s=5.0)
    try:
        with bridge_server.BridgeServer(robot, port=0, api_keys=[KEY]).run_in_thread() as port:
            yield f"ws://127.0.0.1:{port}"
    finally:
        robot.close()


def test_both_servers_answer_the_corpus_with_the_decoders_words(worker_url: str, bridge_url: str) -> None:
    headers = {"Authorization": f"Api-Key {KEY}"}
    with connect(bridge_url, additional_headers=headers, max_size=None) as bridge:
        assert unpackb(bridge.recv(timeout=30))["type"] == "hello"
        for name, frame, _ in CORPUS:
            expected = _refusal(unpackb, frame)
            bridge.send(frame)
            reply = unpackb(bridge.recv(timeout=30))
            assert (reply["ok"], reply["error_type"], reply["error"]) == (False, "bad_request", expected), name

            with connect(worker_url, additional_headers=headers, max_size=None) as worker:
                worker.recv(timeout=30)  # metadata frame
                worker.send(frame)
                assert worker.recv(timeout=30) == f"bad request: {expected}", name
        bridge.send(packb({"id": 2, "op": "describe"}))  # the bridge kept serving through the whole corpus
        assert unpackb(bridge.recv(timeout=30))["ok"] is True
