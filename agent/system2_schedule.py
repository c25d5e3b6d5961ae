"""When to ask System 2 for the next subtask: a pure, tick-by-tick schedule for the active task.

System 2 is asked when the task has no subtask yet, every `every_k_chunks` executed chunks (the paper re-plans at
subtask boundaries; counting chunks is how we notice them without one), and at once after anything that may have
changed the answer (a subtask achieved, coaching released, the task text changed). One question is in flight at a
time; after a failure the next try waits `retry_s`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class System2Question:
    """The tag of one System-2 call: which task (epoch, text) it was asked for, and at which tick."""

    epoch: int
    tick: int
    task: str


@dataclass
class System2Schedule:
    every_k_chunks: int
    retry_s: float
    in_flight: bool = False
    chunks_since: int = 0
    next_try: float = 0.0
    asked_once: bool = False

    def due(self, now: float, has_subtask: bool) -> bool:
        if self.in_flight or now < self.next_try:
            return False
        return not has_subtask or not self.asked_once or self.chunks_since >= self.every_k_chunks

    def asked(self) -> None:
        self.in_flight = True
        self.asked_once = True
        self.chunks_since = 0

    def answered(self) -> None:
        self.in_flight = False

    def failed(self, now: float) -> None:
        self.in_flight = False
        self.next_try = now + self.retry_s

    def on_chunk(self) -> None:
        self.chunks_since += 1

    def look_again(self) -> None:
        """Ask at the next opportunity (a boundary: subtask achieved, coaching released, task changed)."""
        self.chunks_since = self.every_k_chunks
        self.next_try = 0.0
