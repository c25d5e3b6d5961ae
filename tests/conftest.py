"""Suite-wide settings: headless rendering, few threads on a 2-core machine, and the shared process reaper."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")

import pytest

pytest_plugins = ["tests.pg"]  # `postgres_url`: a fresh PostgreSQL database per test (skipped without a server)


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Never let a leaked non-daemon thread keep the test process alive after the summary is printed.

    A thread that outlives its test is a bug in that test, so it is named on stderr; but CI must still end with
    pytest's own exit status instead of hanging until its time limit.
    """
    import sys
    import threading

    leaked = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if leaked:
        names = ", ".join(t.name for t in leaked)
        sys.stderr.write(f"\nwarning: non-daemon threads still running at exit: {names}; exiting anyway\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(int(getattr(config, "_hearth_exitstatus", 1)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._hearth_exitstatus = int(exitstatus)
