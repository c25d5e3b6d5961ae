"""MP4 video for episodes: streaming encode at an exact frame rate, and decode with presentation timestamps.

Why this shape: LeRobot looks frames up by `from_timestamp + frame_index / fps` and refuses any frame whose decoded
timestamp is more than 1e-4 s away, so every frame gets pts = frame number in a 1/fps time base and nothing is ever
dropped or duplicated. AV1 (SVT-AV1) is LeRobot's default; H.264 is the fallback where PyAV lacks an AV1 encoder.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

logger = logging.getLogger(__name__)

# SVT-AV1 prints a dozen info lines (and benign warnings about small frames) to stderr per encoder; keep errors.
# Read once per process when the first encoder starts, so it is set at import; an explicit SVT_LOG wins.
os.environ.setdefault("SVT_LOG", "1")

PIX_FMT = "yuv420p"
GOP = 2  # a keyframe every 2 frames: cheap random access (LeRobot's default)
_AV1 = ("libsvtav1", {"crf": "30", "preset": "12", "g": str(GOP)}, "av1")
# Live recording shares the process with a control loop. SVT-AV1's default (random-access prediction, one thread
# per core) keeps the calling thread inside encode() -- holding the GIL -- for up to ~90 ms at 224 px, which stalls
# every other Python thread; low-delay prediction on one SVT thread measured < 1 ms of stall, at ~3x the file size
# and ~190 frames/s per 224 px stream on this machine (benchmarks/recorder.py). Offline collection keeps the default.
_AV1_LIVE = ("libsvtav1", {"crf": "30", "preset": "12", "g": str(GOP), "svtav1-params": "pred-struct=1:lp=1"}, "av1")
_H264 = ("libx264", {"crf": "23", "preset": "veryfast", "g": str(GOP), "tune": "zerolatency"}, "h264")


@functools.lru_cache(maxsize=2)
def choose_codec(live: bool = True) -> tuple[str, dict[str, str], str]:
    """(encoder name, encoder options, codec name for info.json): AV1 when this PyAV can encode it, else H.264.

    live=True picks settings that never hold the caller's thread for long (see above)."""
    for encoder, options, codec in ((_AV1_LIVE if live else _AV1), _H264):
        try:
            av.codec.Codec(encoder, "w")
        except Exception:  # the build lacks this encoder
            continue
        return encoder, dict(options), codec
    raise RuntimeError("this PyAV build can encode neither AV1 (libsvtav1) nor H.264 (libx264)")


def check_frame_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0 or height % 2 or width % 2:
        raise ValueError(
            f"camera frames must have even, positive height and width for {PIX_FMT} video, got {height}x{width}"
        )


class VideoEncoder:
    """Encodes uint8 HxWx3 frames one by one into an MP4 whose frame i has timestamp exactly i / fps."""

    def __init__(self, path: Path, fps: int, height: int, width: int, live: bool = True):
        check_frame_size(height, width)
        self.path = Path(path)
        self.height, self.width, self.fps = height, width, int(fps)
        encoder, options, self.codec = choose_codec(live)
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(encoder, rate=self.fps, options=options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, PIX_FMT
        self._stream.time_base = Fraction(1, self.fps)
        self.frames = 0
        self._closed = False

    def add(self, image: np.ndarray) -> None:
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"video frame must be uint8 {(self.height, self.width, 3)}, got {image.dtype} {image.shape}"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and write the MP4 index; the file is only playable after this."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close without caring about the result (the file is about to be deleted)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames:
                self._stream.encode()  # end of stream, so the encoder shuts down cleanly (SVT-AV1 logs an error otherwise)
            self._container.close()
        except Exception:  # an encoder that never got a frame may refuse to finish; the file is discarded anyway
            logger.debug("video encoder abort failed for %s", self.path, exc_info=True)


def encode_frames(path: Path, fps: int, frames: np.ndarray) -> None:
    """Encode a whole [T, H, W, 3] uint8 array (used when recovering an interrupted episode)."""
    encoder = VideoEncoder(path, fps, frames.shape[1], frames.shape[2], live=False)
    try:
        for image in frames:
            encoder.add(image)
    finally:
        encoder.close()


def iter_frames(path: Path, start_s: float = 0.0, end_s: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(timestamp seconds, uint8 HxWx3) for every frame with start_s - 1e-4 <= t < end_s - 1e-4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start_s > 0:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            t = float(frame.pts * frame.time_base)
            if t < start_s - 1e-4:
                continue
            if end_s is not None and t >= end_s - 1e-4:
                break
            yield t, frame.to_ndarray(format="rgb24")


def decode_range(path: Path, start_s: float, count: int, fps: float) -> np.ndarray:
    """Exactly `count` frames starting at start_s, checked against i / fps within LeRobot's 1e-4 s tolerance."""
    frames = []
    for i, (t, image) in enumerate(iter_frames(path, start_s, start_s + count / fps)):
        expected = start_s + i / fps
        if abs(t - expected) > 1e-4:
            raise ValueError(f"{path}: frame {i} has timestamp {t:.6f}s, expected {expected:.6f}s (tolerance 1e-4 s)")
        frames.append(image)
    if len(frames) != count:
        raise ValueError(f"{path}: expected {count} frames from {start_s:.4f}s, decoded {len(frames)}")
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def probe(path: Path) -> dict[str, object]:
    """Codec, size, pixel format, frame rate and frame count of an MP4 (for info.json and checks)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        return {
            "codec": ctx.name if ctx.name != "libdav1d" else "av1",
            "height": ctx.height,
            "width": ctx.width,
            "pix_fmt": ctx.pix_fmt,
            "fps": float(stream.average_rate) if stream.average_rate else None,
            "frames": int(frames),
        }
