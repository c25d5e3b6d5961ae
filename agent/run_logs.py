"""Keeping a headless run's terminal output to its trace: every log record goes to a file instead.

A `hearth run` prints the subtask trace a person reads; library chatter (robosuite's import-time warnings, which
it prints through its own console handler *and* propagates; PyOpenGL's accelerate notice; the worker's
per-connection lines) belongs in a log file the trace points to. robosuite attaches its console handler when it
is first imported, so it is imported here with stderr going to the log file, and that handler is then removed;
its records still reach the file through the root logger.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import warnings
from pathlib import Path

from agent.logging_setup import JsonFormatter, KeyValueFormatter


def route_logs_to_file(path: Path, json_format: bool = False, preload: tuple[str, ...] = ()) -> Path:
    """Send all logging (and Python warnings) to `path`; import `preload` modules with stderr captured there too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter() if json_format else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    with open(path, "a", encoding="utf-8") as sink, contextlib.redirect_stderr(sink):
        for name in preload:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    _drop_console_handlers(logging.getLogger("robosuite_logs"))
    return path


def _drop_console_handlers(logger: logging.Logger) -> None:
    """Remove a library's own stderr/stdout handlers; its records still propagate to the root (the file)."""
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler:
            logger.removeHandler(handler)
    logger.propagate = True
