"""Frames per second the console's live view paints in a real browser while a task runs.

Starts the whole stack on loopback (policy worker with a tiny random checkpoint, API with the simulated kitchen,
console), logs into the console in headless Chromium, starts a task, and counts the JPEG frames the live view's
WebSocket delivered per camera over a window, next to the robot's achieved control rate (the upper bound: a
camera frame exists only when the control loop observes).

    MUJOCO_GL=egl .venv/bin/python benchmarks/console_live.py --seconds 20 --fps 15
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.ui.stack import ROBOT_ID, running_stack

TASK = "put the can in the sink"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the task starts before measuring")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="hearth-console-bench-") as folder, running_stack(Path(folder)) as stack:
        api = stack.client("operator")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            page.goto(stack.console_url)
            page.get_by_label("API token", exact=True).and_(page.locator("input")).fill(stack.tokens["operator"])
            page.get_by_role("button", name="Log in").click()
            page.get_by_text("Start a task").wait_for()
            live = next(f for f in page.frames if f.evaluate("typeof window.hearthLive !== 'undefined'"))
            task_id = api.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK}).json()["id"]
            live.wait_for_function("document.getElementById('task-state').textContent === 'running'")
            time.sleep(args.warmup)
            start_frames = live.evaluate("({...window.hearthLive.frames})")
            start_tick = api.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["tick"]
            started = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - started
            end_frames = live.evaluate("({...window.hearthLive.frames})")
            status = api.get(f"/api/v1/robots/{ROBOT_ID}/status").json()
            still_running = status.get("task_id") == task_id and status.get("task_state") == "running"
            browser.close()
        api.close()
    print(f"window {elapsed:.1f} s, task still running at the end: {still_running}")
    print(f"robot control rate: {(status['tick'] - start_tick) / elapsed:.1f} Hz (target {status['control_hz']:g})")
    for camera in sorted(end_frames):
        fps = (end_frames[camera] - start_frames.get(camera, 0)) / elapsed
        print(f"browser frames/s {camera:>6}: {fps:.1f}")


if __name__ == "__main__":
    main()
