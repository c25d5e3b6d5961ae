"""Commands from other threads (API handlers, the console) applied on the control thread, between ticks.

Why: the loop's state (executor, pause causes, subtask) is owned by one thread, so nothing needs a lock and no
command races a tick; a coach's utterance still reaches the low level within one tick. When the loop is not
running (tests, a stopped runtime) a command runs inline. `changed` wakes anyone waiting for a task's state.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")


class CommandTimeout(RuntimeError):
    """The control loop did not apply a command in time."""


class ControlCommands:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.changed = threading.Condition()
        self._pending: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self.loop_thread: threading.Thread | None = None

    @property
    def loop_running(self) -> bool:
        return self.loop_thread is not None and self.loop_thread.is_alive()

    def run(self, fn: Callable[[], T], wait: bool = True) -> T | None:
        """Run `fn` on the control thread (inline when the loop is not running) and return its result."""
        if not self.loop_running or threading.current_thread() is self.loop_thread:
            return fn()
        future: Future = Future()
        self._pending.put((fn, future))
        self.notify()
        if not wait:
            return None
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise CommandTimeout("control loop did not apply the command in time") from None

    def apply_pending(self) -> None:
        """On the control thread: run every queued command, delivering results and errors to their callers."""
        while True:
            try:
                fn, future = self._pending.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # delivered to the caller's thread
                future.set_exception(exc)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def idle_wait(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)
