"""The codec is byte-compatible with openpi_client.msgpack_numpy and turns every malformed message into WireError."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from openpi_client import msgpack_numpy

from policy.wire import WireError, packb, unpackb


def test_matches_the_documented_bytes_of_openpi() -> None:
    # reference/openpi.md §3.3: the verified packing of {"state": np.arange(3, dtype=np.float32)}
    expected = (
        bytes.fromhex("81a5") + b"state" + bytes.fromhex("84c40b") + b"__ndarray__" + bytes.fromhex("c3c404") + b"data"
        + bytes.fromhex("c40c") + np.arange(3, dtype=np.float32).tobytes() + bytes.fromhex("c405") + b"dtype"
        + bytes.fromhex("a3") + b"<f4" + bytes.fromhex("c405") + b"shape" + bytes.fromhex("9103")
    )
    assert packb({"state": np.arange(3, dtype=np.float32)}) == expected


@pytest.mark.parametrize(
    "value",
    [
        np.zeros((4, 5, 3), dtype=np.uint8),
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.array([True, False]),
        np.array(["ab", "cde"]),
        np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2],  # non-contiguous: sent C-order like openpi
        np.float32(1.5),
        np.int64(-7),
    ],
)
def test_bytes_equal_openpi_and_both_decoders_agree(value: object) -> None:
    message = {"x": value, "nested": {"list": [1, "a", None, 2.5], "flag": True}}
    ours = packb(message)
    assert ours == msgpack_numpy.packb(message)
    for decoded in (unpackb(ours), msgpack_numpy.unpackb(ours)):
        np.testing.assert_array_equal(decoded["x"], value)
        assert np.asarray(decoded["x"]).dtype == np.asarray(value).dtype
        assert decoded["nested"] == {"list": [1, "a", None, 2.5], "flag": True}


def test_refuses_to_send_object_and_complex_arrays() -> None:
    for bad in (np.array([object()], dtype=object), np.array([1j])):
        with pytest.raises(WireError, match="dtype"):
            packb({"x": bad})


def _array_map(dtype: object, shape: object, data: object) -> bytes:
    return msgpack.packb({"x": {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\xc1", "not valid msgpack"),
        (b"\x81\xa1a", "not valid msgpack"),
        (b"\x01\x02", "more than one"),
        (_array_map("<f4", [3], b"\x00"), "needs 12 bytes"),
        (_array_map("<f4", [-1], b""), "non-negative"),
        (_array_map("<f4", [True], b"\x00" * 4), "non-negative"),
        (_array_map("|O", [1], b"\x00" * 8), "not allowed"),
        (_array_map("nonsense", [1], b"\x00"), "unknown array dtype"),
        (_array_map("<f4", [1] * 9, b"\x00" * 4), "at most"),
        (_array_map("<f4", [2], "text"), "must be msgpack bin"),
        (_array_map("V8", [1], b"\x00" * 8), "not allowed"),
        (msgpack.packb({1: 2}), "not valid msgpack"),  # strict_map_key: only str/bytes keys
    ],
)
def test_malformed_messages_raise_wire_error(raw: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        unpackb(raw)


def test_text_frames_are_not_messages() -> None:
    with pytest.raises(WireError, match="binary"):
        unpackb("hello")  # type: ignore[arg-type]
