"""The robot bridge's wire codec: msgpack maps with numpy arrays, and optional JPEG camera frames.

Why a codec here and not ``policy.wire``: robots/ must not import policy/ (the robot's computer installs the
robot side only). The array layout is the common msgpack-numpy convention also used by openpi — a map with the
bin keys ``__ndarray__``, ``data``, ``dtype``, ``shape`` — so generic tools can read a captured frame, but the
code is ours and the decoder trusts nothing: dtype allow-listed, shape bounded, byte count checked. Every
malformed frame becomes one ``BridgeWireError`` whose text is sent back to the peer.

JPEG (``encode_jpeg``/``decode_jpeg``) is for low-bandwidth links: a 224x224 frame shrinks from 150 kB to ~10 kB at
quality 80, at the price of compression artifacts the policy may not have been trained on; raw uint8 is the default.
"""

from __future__ import annotations

import io
import math
from typing import Any

import msgpack
import numpy as np

ND_KEY = b"__ndarray__"
SCALAR_KEY = b"__npgeneric__"
MAX_DIMS = 6
# numeric and bool only: a robot link never needs strings, objects or structured records inside arrays
_ALLOWED_KINDS = frozenset("biuf")


class BridgeWireError(ValueError):
    """A frame that is not a valid bridge message; the text says what was wrong, for the peer to read."""


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise BridgeWireError(f"cannot send an array of dtype {obj.dtype}; use bool, int or float arrays")
        array = np.ascontiguousarray(obj)
        return {ND_KEY: True, b"data": array.tobytes(), b"dtype": array.dtype.str, b"shape": list(array.shape)}
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise BridgeWireError(f"cannot send a numpy scalar of dtype {obj.dtype}")
        return {SCALAR_KEY: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(message: Any) -> bytes:
    """One message (dicts, lists, str, bytes, numbers, bool, None, numpy arrays/scalars) -> one binary frame."""
    try:
        return msgpack.packb(message, default=_default, use_bin_type=True)
    except BridgeWireError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise BridgeWireError(f"cannot encode message: {exc}") from exc


def _dtype(raw: object) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if not isinstance(raw, str) or not 0 < len(raw) <= 8:
        raise BridgeWireError(f"array dtype must be a short numpy dtype string such as '<f4', got {raw!r}")
    try:
        dtype = np.dtype(raw)
    except (TypeError, ValueError) as exc:
        raise BridgeWireError(f"unknown array dtype {raw!r}") from exc
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise BridgeWireError(f"array dtype {raw!r} is not allowed; use bool, int or float")
    return dtype


def _array(obj: dict) -> np.ndarray:
    dtype = _dtype(obj.get(b"dtype"))
    shape = obj.get(b"shape")
    if (
        not isinstance(shape, list | tuple)
        or len(shape) > MAX_DIMS
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise BridgeWireError(f"array shape must be a list of at most {MAX_DIMS} non-negative ints, got {shape!r}")
    data = obj.get(b"data")
    if not isinstance(data, bytes):
        raise BridgeWireError(f"array data must be msgpack bin, got {type(data).__name__}")
    needed = math.prod(shape) * dtype.itemsize
    if len(data) != needed:
        raise BridgeWireError(f"array of dtype {dtype.str} and shape {list(shape)} needs {needed} bytes, got {len(data)}")
    # a writable copy: callers (recorders, image pipelines) may modify what they receive
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _scalar(obj: dict) -> np.generic:
    dtype = _dtype(obj.get(b"dtype"))
    value = obj.get(b"data")
    if not isinstance(value, bool | int | float):
        raise BridgeWireError(f"numpy scalar data must be a number or bool, got {type(value).__name__}")
    try:
        return dtype.type(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BridgeWireError(f"cannot make a {dtype.str} scalar from {value!r}") from exc


def _hook(obj: dict) -> Any:
    if ND_KEY in obj:
        return _array(obj)
    if SCALAR_KEY in obj:
        return _scalar(obj)
    return obj


def decode(frame: bytes | bytearray | memoryview) -> Any:
    """One binary frame -> one message; anything malformed raises ``BridgeWireError`` and nothing else."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise BridgeWireError(f"expected a binary msgpack frame, got {type(frame).__name__}")
    try:
        return msgpack.unpackb(frame, object_hook=_hook, raw=False, strict_map_key=False)
    except BridgeWireError:
        raise
    except msgpack.ExtraData as exc:
        raise BridgeWireError("frame holds more than one msgpack object; send exactly one map per frame") from exc
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError, OverflowError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise BridgeWireError(f"frame is not valid msgpack ({type(exc).__name__}{detail})") from exc


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """uint8 HxWx3 RGB -> JPEG bytes (Pillow is imported here: only JPEG links pay for it)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 HxWx3 RGB; a broken image raises ``BridgeWireError``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BridgeWireError(f"camera frame is not a valid JPEG: {exc}") from exc
