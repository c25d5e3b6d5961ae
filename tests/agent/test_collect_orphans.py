"""`kill -9` of `hearth collect` takes its simulator workers with it (before, they kept collecting and the rerun
failed with "open in another writer")."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.agent.test_collect import collect_args, run_collect
from tests.support import child_pids, process_alive, spawn, wait_until

pytestmark = pytest.mark.slow


def _workers(pid: int) -> set[int]:
    """`pid`'s multiprocessing (spawn) workers, not its resource tracker."""
    found = set()
    for child in child_pids(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
        except OSError:
            continue
    return found


def test_sigkill_of_collect_leaves_no_worker_and_the_rerun_works(tmp_path: Path) -> None:
    out = tmp_path / "demos"
    with spawn(collect_args(out, 4, 2, 400), tmp_path / "killed.log") as process:
        wait_until(lambda: len(_workers(process.pid)) >= 2 or not process.alive(), timeout=120, what="two workers")
        assert process.alive(), process.log_text()
        workers = _workers(process.pid)
        os.kill(process.pid, signal.SIGKILL)  # the main process only, as `kill -9 PID` does
        process.popen.wait(timeout=10)
        wait_until(
            lambda: not any(process_alive(p) for p in workers), timeout=30, what="the workers to die with collect"
        )
    text = run_collect(tmp_path, out, 2, "rerun.log", workers=1, max_steps=6)
    assert "merged" in text
