"""Worker processes that die with the process that started them, even when it is killed with SIGKILL.

`multiprocessing` cleans up children only when the parent exits normally; after `kill -9` of `hearth collect`
its simulator workers kept collecting, and the rerun then failed because their datasets were still open in
another writer. On Linux the kernel does it: `prctl(PR_SET_PDEATHSIG, SIGKILL)` (man 2 prctl) delivers SIGKILL to
the child when its parent dies. Elsewhere a daemon thread polls the parent's pid. Either way the parent may
already be gone before the child installs this, so the parent's pid is checked once more afterwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Call first thing in a child process: it is killed as soon as `parent_pid` is no longer its parent."""
    if not (sys.platform.startswith("linux") and _set_parent_death_signal(signal.SIGKILL)):
        threading.Thread(target=_watch_parent, args=(parent_pid, poll_s), name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed: nobody will send it
        os._exit(1)


def arm_parent_death_signal() -> None:
    """`preexec_fn` for subprocess.Popen: the new process gets SIGKILL when the process that started it dies.

    Runs in the child between fork and exec (the setting survives exec), so it is armed before the service runs.
    Linux only; elsewhere it does nothing and the supervisor's own stop() is the only cleanup."""
    if sys.platform.startswith("linux"):
        _set_parent_death_signal(signal.SIGKILL)


def _set_parent_death_signal(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)
