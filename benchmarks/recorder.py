"""Sustained recording rate: frames per second the EpisodeRecorder turns into a committed LeRobotDataset episode.

Three cameras at each size. Throughput: frames are fed as fast as record() accepts them and the clock stops when
finish() has committed the episode (video flushed, parquet and metadata written), so the number is end-to-end, not
queueing. Paced: frames arrive at the 20 Hz control rate, as in the orchestrator; we report how long record() holds
the control thread, the largest backlog, and how long finish() takes after the last tick.

    .venv/bin/python benchmarks/recorder.py [--frames 300] [--paced-frames 200] [--sizes 128 224]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.recorder import EpisodeRecorder
from policy.data.video import choose_codec
from robots.types import CameraSpec, JointSpec, Observation, RobotDescription

CAMERAS = ("head", "wrist", "third")


def scene(size: int, frame: int, camera: int, rng: np.random.Generator) -> np.ndarray:
    """A camera-like image: smooth shading, a few moving blocks, sensor noise (pure noise would be unrealistically hard)."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.empty((size, size, 3), np.float32)
    img[..., 0] = 90 + 60 * np.sin((x + 3 * frame) / 17.0 + camera)
    img[..., 1] = 110 + 50 * np.cos((y - 2 * frame) / 23.0)
    img[..., 2] = 120 + 40 * np.sin((x + y) / 31.0 + frame / 9.0)
    for k in range(4):
        cx = int((size / 5) * (k + 1) + 10 * np.sin(frame / 7.0 + k)) % size
        cy = int(size / 2 + size / 4 * np.cos(frame / 11.0 + k)) % size
        img[max(cy - size // 12, 0) : cy + size // 12, max(cx - size // 12, 0) : cx + size // 12] = (200, 40 * k, 90)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def description(size: int, hz: float) -> RobotDescription:
    return RobotDescription(
        name="bench",
        robot_type="bench",
        control_hz=hz,
        cameras=[CameraSpec(name=c, height=size, width=size) for c in CAMERAS],
        state=[JointSpec(name=f"s{i}") for i in range(12)],
        actions=[JointSpec(name=f"a{i}") for i in range(12)],
    )


def observations(size: int) -> list[Observation]:
    """A loop of distinct pre-rendered frames, so the benchmark measures the recorder, not the scene generator."""
    rng = np.random.default_rng(0)
    loop = [{c: scene(size, f, i, rng) for i, c in enumerate(CAMERAS)} for f in range(30)]
    return [Observation(images=imgs, state=np.zeros(12, np.float32)) for imgs in loop]


def run(size: int, frames: int, root: Path, hz: float | None, live: bool = True) -> dict[str, float]:
    """hz=None: as fast as possible; else one record() per 1/hz seconds."""
    obs = observations(size)
    recorder = EpisodeRecorder(root, description(size, hz or 20.0), live_video=live)
    try:
        recorder.start("benchmark task")
        call_us, late_us, backlog = [], [], 0
        started = time.perf_counter()
        for i in range(frames):
            if hz:
                # wake up every 2 ms like a busy control thread; lateness = time the GIL was held elsewhere
                deadline = started + i / hz
                while (now := time.perf_counter()) < deadline:
                    planned = min(deadline, now + 0.002)
                    time.sleep(max(0.0, planned - now))
                    late_us.append((time.perf_counter() - planned) * 1e6)
            t0 = time.perf_counter()
            recorder.record(obs[i % len(obs)], np.full(12, i, np.float32), i // 50, i % 50)
            call_us.append((time.perf_counter() - t0) * 1e6)
            backlog = max(backlog, recorder.backlog)
        last_tick = time.perf_counter()
        recorder.finish("succeeded", True)
        done = time.perf_counter()
    finally:
        recorder.close()
    return {
        "fps": frames / (done - started),
        "finish_s": done - last_tick,
        "backlog": backlog,
        "record_p50_us": float(np.percentile(call_us, 50)),
        "record_p99_us": float(np.percentile(call_us, 99)),
        "record_max_us": float(np.max(call_us)),
        "late_p99_us": float(np.percentile(late_us, 99)) if late_us else 0.0,
        "late_max_us": float(np.max(late_us)) if late_us else 0.0,
    }


def idle_lateness(seconds: float) -> tuple[float, float]:
    """The same 2 ms wake-up loop with nothing else in the process: the machine's own scheduling noise."""
    late = []
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        planned = now + 0.002
        time.sleep(0.002)
        late.append((time.perf_counter() - planned) * 1e6)
    return float(np.percentile(late, 99)), float(np.max(late))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--paced-frames", type=int, default=200)
    parser.add_argument(
        "--offline-video",
        action="store_true",
        help="use the offline (default SVT-AV1) encoder settings instead of the live ones, for comparison",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    args = parser.parse_args()
    logging.getLogger("agent.recorder").setLevel(logging.ERROR)  # the flat-out run backs up on purpose
    live = not args.offline_video
    encoder, options, codec = choose_codec(live=live)
    print(
        f"codec {codec} ({encoder} {options}), 3 cameras; flat out: {args.frames} frames, paced at 20 Hz: "
        f"{args.paced_frames} frames"
    )
    print(
        "| size | sustained frames/s (3 cameras, flat out) | paced 20 Hz: record() p50 / p99 / max µs | "
        "control thread wake-up lateness p99 / max µs | max backlog | finish() after last tick |"
    )
    print("|---|---|---|---|---|---|")
    p99, worst = idle_lateness(args.paced_frames / 20.0)
    print(f"| (no recorder) | - | - | {p99:.0f} / {worst:.0f} | - | - |")
    for size in args.sizes:
        results = []
        for frames, hz in ((args.frames, None), (args.paced_frames, 20.0)):
            root = Path(tempfile.mkdtemp(prefix=f"hearth-recorder-{size}-"))
            try:
                results.append(run(size, frames, root, hz, live))
            finally:
                shutil.rmtree(root, ignore_errors=True)
        flat, paced = results
        print(
            f"| {size}×{size} | {flat['fps']:.1f} | {paced['record_p50_us']:.0f} / {paced['record_p99_us']:.0f} / "
            f"{paced['record_max_us']:.0f} | {paced['late_p99_us']:.0f} / {paced['late_max_us']:.0f} | "
            f"{paced['backlog']} | {paced['finish_s'] * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
