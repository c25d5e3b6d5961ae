"""The demo supervisor with real processes: health waits, a clear error on a crashing service, no orphans."""

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

from agent.stack import ServiceSpec, Stack, StackError
from tests.support import free_port

HTTP_SERVER = """
import http.server, os, subprocess, sys
# a grandchild in the same process group, to prove the supervisor leaves no orphans
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(child.pid))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404); self.end_headers(); self.wfile.write(b"OK")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_stack_starts_in_order_waits_for_health_and_leaves_no_orphans(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    specs = [
        ServiceSpec(
            f"svc{i}",
            [sys.executable, "-c", HTTP_SERVER, str(p), str(tmp_path / f"child{i}.pid")],
            health_url=f"http://127.0.0.1:{p}/healthz",
            startup_timeout_s=30,
        )
        for i, p in enumerate(ports)
    ]
    stack = Stack(specs, tmp_path / "logs")
    with stack:
        pids = [s.process.pid for s in stack.running]
        children = [int((tmp_path / f"child{i}.pid").read_text()) for i in range(2)]
        assert all(alive(p) for p in pids + children)
        assert stack.failed() is None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids + children):
        time.sleep(0.05)
    assert not any(alive(p) for p in pids + children)


def test_a_crashing_service_fails_start_with_its_log_and_stops_the_others(tmp_path: Path) -> None:
    port = free_port()
    good = ServiceSpec(
        "good",
        [sys.executable, "-c", HTTP_SERVER, str(port), str(tmp_path / "c.pid")],
        health_url=f"http://127.0.0.1:{port}/healthz",
        startup_timeout_s=30,
    )
    bad = ServiceSpec(
        "bad",
        [sys.executable, "-c", "import sys; print('boom: no checkpoint'); sys.exit(3)"],
        health_url=f"http://127.0.0.1:{free_port()}/healthz",
        startup_timeout_s=30,
    )
    stack = Stack([good, bad], tmp_path / "logs")
    with pytest.raises(StackError, match=r"bad exited with code 3 during start-up(.|\n)*boom: no checkpoint"):
        stack.start()
    assert stack.running == []
    child = int((tmp_path / "c.pid").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(child):
        time.sleep(0.05)
    assert not alive(child)


SUPERVISOR = """
import sys, time
from pathlib import Path
from agent.stack import ServiceSpec, Stack
port, pid_file, folder = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
spec = ServiceSpec("svc", [sys.executable, "-c", sys.argv[4], str(port), pid_file],
                   health_url=f"http://127.0.0.1:{port}/healthz", startup_timeout_s=30)
stack = Stack([spec], folder / "logs")
stack.start()
(folder / "service.pid").write_text(str(stack.running[0].process.pid))
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_services_die_with_a_supervisor_killed_by_sigkill(tmp_path: Path) -> None:
    """`kill -9` of `hearth demo` (no stop() runs) must not leave the console or the API running in their own
    sessions, where neither the terminal's Ctrl-C nor the process group reaches them."""
    import signal
    import subprocess

    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-c", SUPERVISOR, str(free_port()), str(tmp_path / "child.pid"), str(tmp_path), HTTP_SERVER]
    supervisor = subprocess.Popen(argv, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "service.pid").exists():
            assert supervisor.poll() is None, "the supervisor exited before its service was healthy"
            time.sleep(0.1)
        service = int((tmp_path / "service.pid").read_text())
        assert alive(service)
    finally:
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(service):
        time.sleep(0.05)
    grandchild = int((tmp_path / "child.pid").read_text())
    with contextlib.suppress(ProcessLookupError):  # the service's own child is not the kernel's to kill: tidy up
        os.kill(grandchild, signal.SIGKILL)
    assert not alive(service), "the service outlived its supervisor"
