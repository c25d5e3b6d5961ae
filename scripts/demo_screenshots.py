"""Screenshots of the console as `make demo` shows it: the bundled checkpoint driving the simulated kitchen.

Why: the browser tests take their pictures of a test stack (random weights, a robot named "kitchen"), which is
right for testing the console but is not what a visitor sees. This script runs the real `hearth demo` in a
fresh deployment home, logs in with the demo's own operator token in headless Chromium, starts a task from the
live page and photographs it at laptop sizes while the bundled policy works, then stops the demo.

    MUJOCO_GL=egl .venv/bin/python scripts/demo_screenshots.py --out docs/screenshots --seconds 40
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORTS = ({"width": 1280, "height": 800}, {"width": 1440, "height": 900})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s (see the demo's log)")


def shoot(console_url: str, token: str, task: str, seconds: float, out: Path, prefix: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORTS[0]).new_page()
        page.set_default_timeout(90_000)
        page.goto(console_url)
        page.get_by_label("API token", exact=True).and_(page.locator("input")).fill(token)
        page.get_by_role("button", name="Log in").click()
        page.get_by_label("Task", exact=True).fill(task)
        page.get_by_role("button", name="Start task").click()
        started = time.monotonic()
        shots = [seconds * (i + 1) / len(VIEWPORTS) for i in range(len(VIEWPORTS))]
        for viewport, at in zip(VIEWPORTS, shots, strict=True):
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            page.set_viewport_size(viewport)
            time.sleep(2.0)  # let the layout and the next camera frames settle at the new size
            path = out / f"{prefix}-{viewport['width']}x{viewport['height']}.png"
            page.screenshot(path=str(path))
            written.append(path)
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--task", default="put the can in the sink")
    parser.add_argument("--seconds", type=float, default=40.0, help="how far into the task the last picture is")
    parser.add_argument("--checkpoint", default=None, help="default: the bundled sim-small")
    parser.add_argument("--prefix", default="demo")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hearth-demo-") as home:
        ports = {name: free_port() for name in ("worker", "api", "console")}
        command = [str(ROOT / ".venv" / "bin" / "hearth"), "demo", "--home", home]
        command += [f"--{name}-port={port}" for name, port in ports.items()]
        if args.checkpoint:
            command += ["--checkpoint", args.checkpoint]
        log = open(Path(home) / "demo-screenshots.log", "w")  # noqa: SIM115 - closed after the demo stops
        env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
        demo = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_for(f"http://127.0.0.1:{ports['console']}/_stcore/health", timeout_s=240)
            wait_for(f"http://127.0.0.1:{ports['api']}/api/v1/health", timeout_s=240)
            token = (Path(home) / "demo-token").read_text().strip()
            args.out.mkdir(parents=True, exist_ok=True)
            console = f"http://127.0.0.1:{ports['console']}"
            for path in shoot(console, token, args.task, args.seconds, args.out, args.prefix):
                print(f"wrote {path}")
        finally:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
