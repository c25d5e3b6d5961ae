"""Shared test utilities: free ports, waiting for servers, and child processes that never outlive a test.

Every process a test starts goes through `spawn`: its output goes to a log file (never the inherited
stdout, so no orphan can hold CI's pipe open) and it is killed, with its whole process group, at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; return that value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may not be up yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error!r})" if last_error else "")
    )


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
    def connectable() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    wait_until(connectable, timeout=timeout, what=f"{host}:{port} to accept connections")


class ManagedProcess:
    """A child process in its own process group with its output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.args = args
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **(env or {})}
        self.popen = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=str(cwd or REPO_ROOT),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.alive():
            self.signal_group(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # children that stayed in the group are gone too
        self.signal_group(signal.SIGKILL)
        self._log.close()
        return self.popen.returncode


@contextlib.contextmanager
def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[ManagedProcess]:
    process = ManagedProcess(args, log_path, env)
    try:
        yield process
    finally:
        process.stop()


def random_policy_for(description, preset: str = "tiny", seed: int = 0, **overrides):
    """A random-weight π₀.₅ whose cameras, state/action names, control rate and robot interface match a robot.

    `overrides` are model-config fields (e.g. a short action_horizon and few flow steps for fast tests)."""
    from policy.inference import Pi05Policy

    return Pi05Policy.build_random_for(description, preset, seed, **overrides)


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat after the command name (state, ppid, ...), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def child_pids(pid: int) -> set[int]:
    """The direct children of `pid` (Linux /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat.parent.name)
        if fields is not None and int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def process_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
