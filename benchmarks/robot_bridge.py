"""Robot bridge round trips over loopback: protocol overhead, act, observe (raw vs JPEG), bytes per observation.

Starts `hearth robot-bridge` with the sim kitchen as a separate process (as on a robot's computer) and drives it
with BridgeRobot from this process. Run:
    MUJOCO_GL=egl .venv/bin/python benchmarks/robot_bridge.py [--camera-size 96] [--n 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hearth_wire.codec import packb as encode  # noqa: E402
from robots.bridge import BridgeRobot  # noqa: E402
from robots.bridge_server import observation_message  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(fn, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--camera-size", type=int, default=96)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "bridge.log"
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "robot-bridge",
        "--robot",
        "sim-kitchen",
        "--robot-option",
        f"camera_size={args.camera_size}",
        "--port",
        str(port),
        "--watchdog-timeout-s",
        "5",
    ]
    with open(log, "wb") as out:
        server = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"bridge did not start; log: {log}") from None
                time.sleep(0.25)
        robot = BridgeRobot(f"ws://127.0.0.1:{port}", timeout_s=30)
        jpeg = BridgeRobot(f"ws://127.0.0.1:{port}", timeout_s=30, jpeg_quality=80)
        obs = robot.reset(seed=0)
        hold = robot.hold_action()
        print(f"robot bridge, sim-kitchen, 2 cameras {args.camera_size}px, loopback, n={args.n}")
        print(f"{'op':<28}{'median ms':>10}{'p95 ms':>10}")
        rows = [
            ("task_progress (tiny op)", lambda: robot.task_progress()),
            ("act (one control tick)", lambda: robot.act(hold)),
            ("observe raw uint8", lambda: robot.observe()),
            ("observe JPEG q80", lambda: jpeg.observe()),
        ]
        for name, fn in rows:
            median, p95 = timed(fn, args.n)
            print(f"{name:<28}{median:>10.2f}{p95:>10.2f}")
        raw_bytes = len(encode(observation_message(obs, None)))
        jpeg_bytes = len(encode(observation_message(obs, 80)))
        print(f"bytes per observation: raw {raw_bytes}, JPEG q80 {jpeg_bytes} ({raw_bytes / jpeg_bytes:.1f}x smaller)")
        robot.close()
        jpeg.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
