"""`hearth demo` as a user runs it: headless one-task mode, and the full stack as separate processes."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.stack import http_ok
from tests.support import REPO_ROOT, ManagedProcess, child_pids, free_port, process_alive, wait_until

HEARTH = [sys.executable, "-m", "agent.cli"]


def test_headless_demo_runs_one_task_and_records_it(tmp_path: Path) -> None:
    """Recorded where the console reviews (<home>/episodes/sim-kitchen); exit status says whether the task succeeded;
    the terminal shows the trace, not library logs (those go to <home>/logs/run.log)."""
    result = subprocess.run(
        [
            *HEARTH,
            "demo",
            "--headless",
            "--task",
            "put the can in the sink",
            "--random-preset",
            "tiny",
            "--home",
            str(tmp_path),
            "--max-seconds",
            "25",
        ],
        capture_output=True,
        text=True,
        timeout=280,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )
    out = result.stdout
    outcome = re.search(r"^outcome: (\w+)", out, re.MULTILINE)
    assert outcome and outcome.group(1) in {"succeeded", "failed"}, out[-1500:] + result.stderr[-2000:]
    assert result.returncode == (0 if outcome.group(1) == "succeeded" else 1), out[-1500:]
    assert "task running" in out
    trace = out.split("subtask trace:", 1)[1]
    assert re.search(r"\[(policy|coach|api)\] \S", trace), trace
    chunks = int(re.search(r"chunks: (\d+)", out).group(1))
    assert chunks >= 1
    dataset = tmp_path / "episodes" / "sim-kitchen"  # the same dataset the API records the robot into
    assert (dataset / "meta" / "info.json").exists(), out[-1500:]
    assert list((dataset / "videos").rglob("*.mp4"))
    for noise in ("robosuite WARNING", "level=", "websocket=", "policy worker late: policy worker"):
        assert noise not in out + result.stderr, noise
    assert "level=" in (tmp_path / "logs" / "run.log").read_text()


def test_demo_without_a_checkpoint_says_how_to_get_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [*HEARTH, "demo", "--checkpoint", str(tmp_path / "missing"), "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert "no checkpoint at" in result.stderr and "--random-preset tiny" in result.stderr


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (services run in their own sessions, so the tree is walked, not the group)."""
    found = child_pids(pid)
    frontier = set(found)
    while frontier:
        frontier = set().union(*(child_pids(p) for p in frontier)) - found
        found |= frontier
    return found


@pytest.mark.slow
def test_demo_stack_comes_up_healthy_and_stops_with_no_orphans(tmp_path: Path) -> None:
    ports = {"worker": free_port(), "api": free_port(), "console": free_port()}
    demo = ManagedProcess(
        [
            *HEARTH,
            "demo",
            "--random-preset",
            "tiny",
            "--home",
            str(tmp_path),
            "--worker-port",
            str(ports["worker"]),
            "--api-port",
            str(ports["api"]),
            "--console-port",
            str(ports["console"]),
        ],
        tmp_path / "demo.log",
    )
    try:
        token = wait_until(
            lambda: re.search(r"operator token: (\S+)", demo.log_text()), timeout=240, what="the demo to print a token"
        ).group(1)
        health = {
            "worker": f"http://127.0.0.1:{ports['worker']}/healthz",
            "api": f"http://127.0.0.1:{ports['api']}/api/v1/health",
            "console": f"http://127.0.0.1:{ports['console']}/_stcore/health",
        }
        for name, url in health.items():
            assert http_ok(url), (name, demo.log_text()[-2000:])
        assert "hearth tokens create --role operator" in demo.log_text()  # the banner says how to make more
        assert (tmp_path / "demo-token").read_text().strip() == token  # reused by the next start
        import httpx

        robots = httpx.get(
            f"http://127.0.0.1:{ports['api']}/api/v1/robots", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert robots.status_code == 200 and "sim-kitchen" in robots.text
        services = _descendants(demo.pid)
        assert len(services) >= 3
        os.kill(demo.pid, signal.SIGINT)
        demo.popen.wait(timeout=60)
        assert "stopped." in demo.log_text()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(process_alive(p) for p in services):
            time.sleep(0.1)
        assert not [p for p in services if process_alive(p)]
        for url in health.values():
            assert not http_ok(url, timeout_s=0.5)
    finally:
        demo.stop()
