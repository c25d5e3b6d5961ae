"""Random bytes, mutated messages and malformed msgpack: each gets an error (or a reply); the worker never dies."""

from __future__ import annotations

import contextlib
import http.client

import msgpack
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hearth_wire.codec import packb, unpackb
from policy.server import PolicyServer

from .conftest import hearth_request

CASES = 300


def _cases(metadata: dict) -> list[bytes]:
    rng = np.random.default_rng(1234)
    valid = packb({**hearth_request(metadata, side=2)})
    cases: list[bytes] = []
    for i in range(CASES):
        flavour = i % 5
        if flavour == 0:  # pure noise
            cases.append(rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype=np.uint8).tobytes())
        elif flavour == 1:  # a real request, truncated
            cases.append(valid[: int(rng.integers(0, len(valid)))])
        elif flavour == 2:  # a real request with a few bytes flipped
            data = bytearray(valid)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
                data[pos] = int(rng.integers(0, 256))
            cases.append(bytes(data))
        elif flavour == 3:  # well-formed msgpack, wrong structure
            shapes = [
                [],
                [1, 2, 3],
                "prompt",
                {"images": 5},
                {"state": {"__ndarray__": True}},
                None,
                3.5,
                {"images": {"head": [1, 2]}, "state": [0.0], "prompt": b"x"},
            ]
            cases.append(msgpack.packb(shapes[i % len(shapes)]))
        else:  # array maps with lying dtype/shape/data
            lie = {
                b"__ndarray__": True,
                b"data": rng.bytes(int(rng.integers(0, 64))),
                b"dtype": ["<f4", "|O", "V3", "<c8", "zz", 7][i % 6],
                b"shape": [int(rng.integers(-3, 9))],
            }
            cases.append(msgpack.packb({"images": {"head": lie, "wrist": lie}, "state": lie, "prompt": "x"}))
    return cases


def test_fuzzed_messages_never_kill_the_worker(tiny_policy) -> None:
    srv = PolicyServer(tiny_policy, port=0)
    with srv.run_in_thread() as port:
        errors = replies = 0
        for data in _cases(srv.metadata):
            with connect(f"ws://127.0.0.1:{port}", open_timeout=10, close_timeout=2) as ws:
                unpackb(ws.recv(timeout=10))
                ws.send(data)
                answer = ws.recv(timeout=60)
                if isinstance(answer, str):
                    errors += 1
                    with contextlib.suppress(ConnectionClosed):
                        ws.recv(timeout=10)
                    assert ws.close_code == 1011
                else:
                    replies += 1  # a flipped byte inside image data is still a valid request
                    assert "actions" in unpackb(answer)
        assert errors + replies == CASES and errors > CASES * 0.8
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("hearth_policy_errors_total{reason=") and "disconnect" not in line
        )
        assert counted == errors
        with connect(f"ws://127.0.0.1:{port}", open_timeout=10) as ws:  # still serving
            unpackb(ws.recv(timeout=10))
            ws.send(packb(hearth_request(srv.metadata)))
            assert unpackb(ws.recv(timeout=60))["actions"].shape[0] == srv.spec.action_horizon
