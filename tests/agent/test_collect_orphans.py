"""`kill -9` of `hearth collect` takes its simulator workers with it (before, they kept collecting and the rerun
failed with "open in another writer")."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.agent.test_collect import collect_args, run_collect
from tests.support import spawn, wait_until

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_sigkill_of_collect_leaves_no_worker_and_the_rerun_works(tmp_path: Path) -> None:
    out = tmp_path / "demos"
    with spawn(collect_args(out, 4, 2, 400), tmp_path / "killed.log") as process:
        workers = wait_until(
            lambda: (
                {p for p in _children(process.pid) if _is_worker(p)}
                if len({p for p in _children(process.pid) if _is_worker(p)}) >= 2 or not process.alive()
                else None
            ),
            timeout=120,
            what="two collect workers",
        )
        assert process.alive(), process.log_text()
        os.kill(process.pid, signal.SIGKILL)  # the main process only, as `kill -9 PID` does
        process.popen.wait(timeout=10)
        wait_until(lambda: not any(_alive(p) for p in workers), timeout=30, what="the workers to die with collect")
    text = run_collect(tmp_path, out, 2, "rerun.log", workers=1, max_steps=6)
    assert "merged" in text
