"""msgpack-numpy frames: written by `openpi_client.msgpack_numpy`, read by a decoder that trusts nothing.

Encoding is openpi's own (Physical-Intelligence/openpi, packages/openpi-client/src/openpi_client/msgpack_numpy.py):
an array is a map with the msgpack *bin* keys `__ndarray__`, `data`, `dtype`, `shape` (a numpy scalar:
`__npgeneric__`, `data`, `dtype`), so our bytes are exactly what an unmodified openpi client or server writes.

Decoding is ours because openpi's decoder builds `np.ndarray(buffer=..., dtype=..., shape=...)` straight from the
message: a crafted dtype or shape raises arbitrary exceptions or reads the wrong number of bytes. Here every array map
is checked — dtype on an allow-list (bool, integers, floats, fixed-width strings), at most `MAX_NDIM` non-negative
dims, byte count equal to dtype x shape — and every malformed frame becomes one `WireError` whose text may go back
to the peer. Arrays come back as writable copies that own their memory: a consumer may edit them (image pipelines,
recorders) and they do not keep the whole frame alive.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
from openpi_client import msgpack_numpy

ARRAY_KEY = b"__ndarray__"
SCALAR_KEY = b"__npgeneric__"
MAX_NDIM = 8
MAX_DTYPE_CHARS = 16
# bool, signed/unsigned ints, floats, bytes and unicode strings; never objects (pickle), records, complex or times
ALLOWED_KINDS = frozenset("biufSU")


class WireError(ValueError):
    """A frame that is not valid msgpack-numpy (or a value that cannot be sent); the text is safe to send back."""


def packb(message: Any) -> bytes:
    """One message (dicts, lists, str, bytes, numbers, bool, None, numpy arrays/scalars) -> one binary frame."""
    try:
        return msgpack_numpy.packb(message)
    except (TypeError, ValueError, OverflowError) as exc:  # openpi: ValueError "Unsupported dtype" for O/V/c arrays
        raise WireError(f"cannot encode message: {exc}") from exc


def _short(value: object, limit: int = 64) -> str:
    """What an error may echo of the peer's value: its repr, cut short (errors go back on the wire and into logs)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dtype(raw: object) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_DTYPE_CHARS:
        raise WireError(f"array dtype must be a short numpy dtype string such as '<f4', got {_short(raw)}")
    try:
        dtype = np.dtype(raw)
    except (TypeError, ValueError) as exc:
        raise WireError(f"unknown array dtype {_short(raw)}") from exc
    if dtype.kind not in ALLOWED_KINDS or dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {raw!r} is not allowed; use bool, int, float or fixed-width str")
    return dtype


def _shape(raw: object) -> tuple[int, ...]:
    if (
        not isinstance(raw, list | tuple)
        or len(raw) > MAX_NDIM
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in raw)
    ):
        raise WireError(f"array shape must be a list of at most {MAX_NDIM} non-negative ints, got {_short(raw)}")
    return tuple(raw)


def _array(obj: dict) -> np.ndarray:
    dtype, shape, data = _dtype(obj.get(b"dtype")), _shape(obj.get(b"shape")), obj.get(b"data")
    if not isinstance(data, bytes):
        raise WireError(f"array data must be msgpack bin, got {type(data).__name__}")
    needed = math.prod(shape) * dtype.itemsize
    if len(data) != needed:
        raise WireError(f"array of dtype {dtype.str} and shape {list(shape)} needs {needed} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _scalar(obj: dict) -> np.generic:
    dtype, value = _dtype(obj.get(b"dtype")), obj.get(b"data")
    if not isinstance(value, bool | int | float | str | bytes):
        raise WireError(f"numpy scalar data must be a number, bool or str, got {type(value).__name__}")
    try:
        return dtype.type(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot make a {dtype.str} scalar from {_short(value)}") from exc


def _hook(obj: dict) -> Any:
    if ARRAY_KEY in obj:
        return _array(obj)
    if SCALAR_KEY in obj:
        return _scalar(obj)
    return obj


def unpackb(frame: bytes | bytearray | memoryview) -> Any:
    """One binary frame -> one message; anything malformed raises `WireError` and nothing else.

    Map keys must be str or bytes (msgpack's `strict_map_key`): other keys are a hash-flooding vector and no
    message of either protocol uses them.
    """
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise WireError(f"expected a binary msgpack frame, got {type(frame).__name__}")
    try:
        return msgpack.unpackb(frame, object_hook=_hook, raw=False, strict_map_key=True)
    except WireError:
        raise
    except msgpack.ExtraData as exc:
        raise WireError("frame holds more than one msgpack object; send exactly one map per frame") from exc
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError, OverflowError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise WireError(f"frame is not valid msgpack ({type(exc).__name__}{detail})") from exc
