"""A tiny process supervisor for the demo stack: start services in order, wait until healthy, stop cleanly.

Why not docker-compose here: `make demo` must work on a laptop with nothing but Python. Each service runs in its
own process group so that Ctrl-C (or a crash of one service) tears the whole stack down with no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.child_lifetime import arm_parent_death_signal

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service failed to start or become healthy; the message says which and shows its last log lines."""


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    health_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 180.0


@dataclass
class RunningService:
    spec: ServiceSpec
    process: subprocess.Popen
    log_path: Path

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError):
        return False


class Stack:
    """Starts services in the given order and stops them in reverse; usable as a context manager."""

    def __init__(self, services: Sequence[ServiceSpec], log_dir: Path):
        self.services = list(services)
        self.log_dir = Path(log_dir)
        self.running: list[RunningService] = []

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.services:
                self.running.append(self._launch(spec))
                self._wait_healthy(self.running[-1])
        except BaseException:
            self.stop()
            raise

    def _launch(self, spec: ServiceSpec) -> RunningService:
        log_path = self.log_dir / f"{spec.name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child process from here on
        process = subprocess.Popen(
            spec.argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **spec.env},
            start_new_session=True,  # its own group: stop() signals the service and everything it started
            # ... but a session of its own also shields it from the terminal's Ctrl-C and outlives a supervisor
            # killed with SIGKILL: the kernel kills it when the supervisor dies (agent/child_lifetime.py)
            preexec_fn=arm_parent_death_signal,
        )
        log_file.close()
        log.info("service started", extra={"service": spec.name, "pid": process.pid, "log": str(log_path)})
        return RunningService(spec, process, log_path)

    def _wait_healthy(self, service: RunningService) -> None:
        if service.spec.health_url is None:
            return
        deadline = time.monotonic() + service.spec.startup_timeout_s
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise StackError(
                    f"{service.spec.name} exited with code {service.process.returncode} during start-up; "
                    f"last log lines ({service.log_path}):\n{service.tail()}"
                )
            if http_ok(service.spec.health_url):
                log.info("service healthy", extra={"service": service.spec.name, "url": service.spec.health_url})
                return
            time.sleep(0.25)
        raise StackError(
            f"{service.spec.name} not healthy at {service.spec.health_url} after {service.spec.startup_timeout_s:.0f}s; "
            f"last log lines ({service.log_path}):\n{service.tail()}"
        )

    def failed(self) -> RunningService | None:
        """The first service that has exited on its own, if any (the demo stops everything then)."""
        return next((s for s in self.running if s.process.poll() is not None), None)

    def stop(self, grace_s: float = 10.0) -> None:
        for service in reversed(self.running):
            _signal_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for service in reversed(self.running):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                service.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                log.warning("service ignored SIGTERM; killing", extra={"service": service.spec.name})
            # whatever is left in the group (the service's own children) goes too
            _signal_group(service.process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=5)
        self.running.clear()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
