"""msgpack with a numpy extension, byte-compatible with the `openpi-client` package (reference/openpi.md §3.3).

Why our own codec instead of importing openpi_client: the worker must not trust its peer. openpi's decoder
builds `np.ndarray(buffer=..., shape=...)` straight from the message, so a crafted dtype or shape raises
arbitrary exceptions (or allocates a view of the wrong size). Here every array map is validated — dtype
allow-listed, shape a short list of non-negative ints, byte count equal to what dtype x shape needs — and any
violation becomes one `WireError` with a clear message. The bytes we emit are exactly what openpi emits: the
four array keys are msgpack *bin* (`b"__ndarray__"`, `b"data"`, `b"dtype"`, `b"shape"`), because the openpi
decoder only recognises bytes keys.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

ARRAY_MARKER = b"__ndarray__"
SCALAR_MARKER = b"__npgeneric__"
# numpy dtype kinds openpi refuses to ship: void (structured), object (pickle risk), complex.
_REJECTED_KINDS = frozenset("VOc")
MAX_NDIM = 8


class WireError(ValueError):
    """A message that is not valid msgpack-numpy; the text says what was wrong, for the peer to read."""


def _encode_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind in _REJECTED_KINDS:
        raise WireError(f"cannot send numpy dtype {obj.dtype} (kind {obj.dtype.kind!r}); use numeric, bool or str arrays")
    if isinstance(obj, np.ndarray):
        return {ARRAY_MARKER: True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return {SCALAR_MARKER: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot serialize object of type {type(obj).__name__} to msgpack")


def packb(obj: Any) -> bytes:
    """Serialize `obj` (dicts, lists, str, numbers, bool, None, numpy arrays and scalars) the way openpi does."""
    try:
        return msgpack.packb(obj, default=_encode_default, use_bin_type=True)
    except WireError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot encode message: {exc}") from exc


def _short(value: object, limit: int = 64) -> str:
    """What an error may echo of a client's value: its repr, cut short (errors go back on the wire and to logs)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_dtype(raw: object) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if not isinstance(raw, str) or not raw or len(raw) > 16:
        raise WireError(f"array dtype must be a short numpy dtype string such as '<f4', got {_short(raw)}")
    try:
        dtype = np.dtype(raw)
    except (TypeError, ValueError) as exc:
        raise WireError(f"unknown array dtype {raw!r}") from exc
    if dtype.kind in _REJECTED_KINDS or dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {raw!r} is not allowed; use numeric, bool or fixed-width str dtypes")
    return dtype


def _parse_shape(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list | tuple) or len(raw) > MAX_NDIM:
        raise WireError(f"array shape must be a list of at most {MAX_NDIM} non-negative ints, got {_short(raw)}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in raw):
        raise WireError(f"array shape must be a list of non-negative ints, got {_short(raw)}")
    return tuple(raw)


def _decode_array(obj: dict) -> np.ndarray:
    dtype = _parse_dtype(obj.get(b"dtype"))
    shape = _parse_shape(obj.get(b"shape"))
    data = obj.get(b"data")
    if not isinstance(data, bytes):
        raise WireError(f"array data must be msgpack bin, got {type(data).__name__}")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise WireError(f"array of dtype {dtype.str} and shape {list(shape)} needs {expected} bytes, got {len(data)}")
    # A read-only view on the message buffer, as openpi does; callers copy when they convert.
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _decode_scalar(obj: dict) -> np.generic:
    dtype = _parse_dtype(obj.get(b"dtype"))
    value = obj.get(b"data")
    if isinstance(value, dict | list | type(None)):
        raise WireError(f"numpy scalar data must be a number, bool or str, got {type(value).__name__}")
    try:
        return dtype.type(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot make a {dtype.str} scalar from {_short(value)}") from exc


def _object_hook(obj: dict) -> Any:
    if ARRAY_MARKER in obj:
        return _decode_array(obj)
    if SCALAR_MARKER in obj:
        return _decode_scalar(obj)
    return obj


def unpackb(data: bytes | bytearray | memoryview) -> Any:
    """Decode one msgpack-numpy message; anything malformed raises `WireError` (never another exception type)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_object_hook, raw=False, strict_map_key=True)
    except WireError:
        raise
    except msgpack.ExtraData as exc:
        raise WireError("message holds more than one msgpack object; send exactly one map per frame") from exc
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError, OverflowError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise WireError(f"message is not valid msgpack ({type(exc).__name__}{detail})") from exc
