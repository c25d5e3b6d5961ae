"""Camera frames as JPEG for the robot bridge's low-bandwidth links (the msgpack-numpy codec is hearth_wire/codec.py).

A 224x224 frame shrinks from 150 kB to ~10 kB at quality 80, at the price of compression artifacts the policy may
not have been trained on; raw uint8 arrays are the default. Pillow is imported inside the functions: only links that
use JPEG pay for it.
"""

from __future__ import annotations

import io

import numpy as np

from hearth_wire.codec import WireError


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """uint8 HxWx3 RGB -> JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 HxWx3 RGB; a broken image raises ``WireError`` (its text goes back to the peer)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise WireError(f"camera frame is not a valid JPEG: {exc}") from exc
