"""Verbal coaching: a person's utterance overrides System 2's subtask until it is judged done.

This is π₀.₅'s "verbal instruction" data source: an expert "teleoperates" the low-level policy with
language, and every override is recorded as `Policy: {predicted} → Relabeled: {coached}` so the pair
(observation, better subtask) can train System 2 later.

Control returns to System 2 when
- the coach says so ("done", "continue", "back to you", ...),
- the coached subtask has run for `release_after_chunks` chunks,
- System 2, asked again *after* the coaching started and after at least one coached chunk, moves on:
  it predicts something other than the subtask it had before the coach spoke (it agrees with the coach,
  or the scene has changed), or
- the task reports progress (a subtask boundary: the coached step was achieved).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agent.system2 import normalize_subtask

RELEASE_PHRASES = frozenset(
    {
        "done",
        "ok done",
        "that's it",
        "thats it",
        "continue",
        "carry on",
        "go on",
        "go ahead",
        "back to you",
        "you decide",
        "your turn",
        "release",
        "resume autonomy",
        "autonomous",
    }
)

NO_PREDICTION = "(none)"


def relabel_text(predicted: str | None, coached: str) -> str:
    """The recorded form of an override, exactly as in the π₀.₅ paper's VI examples."""
    return f"Policy: {predicted or NO_PREDICTION} → Relabeled: {coached}"


@dataclass
class CoachCommand:
    kind: Literal["subtask", "release"]
    text: str


def interpret(utterance: str) -> CoachCommand:
    """Turn what the coach said into an override subtask or a hand-back to System 2."""
    raw = " ".join(str(utterance).split())
    if not raw:
        raise ValueError("coaching utterance must be a non-empty string")
    key = re.sub(r"[.!?,]+", "", raw.lower()).strip()
    if key in RELEASE_PHRASES:
        return CoachCommand("release", key)
    text = normalize_subtask(raw)
    if not text:
        raise ValueError(f"coaching utterance {utterance!r} has no subtask in it")
    return CoachCommand("subtask", text)


@dataclass
class CoachOverride:
    """One active override."""

    coached: str
    predicted: str | None
    started_tick: int
    chunks: int = 0


class CoachingState:
    """Tracks the active override (if any) and decides when it ends. Used by the control thread only."""

    def __init__(self, release_after_chunks: int = 6) -> None:
        if release_after_chunks < 1:
            raise ValueError(f"release_after_chunks must be >= 1, got {release_after_chunks}")
        self.release_after_chunks = release_after_chunks
        self.active: CoachOverride | None = None

    def start(self, coached: str, predicted: str | None, tick: int) -> CoachOverride:
        self.active = CoachOverride(coached=coached, predicted=predicted, started_tick=tick)
        return self.active

    def release(self) -> CoachOverride | None:
        ended, self.active = self.active, None
        return ended

    def on_chunk(self) -> str | None:
        """A chunk of the coached subtask started executing; returns a release reason when done."""
        if self.active is None:
            return None
        self.active.chunks += 1
        if self.active.chunks >= self.release_after_chunks:
            return f"coached subtask ran for {self.active.chunks} chunks"
        return None

    def on_system2(self, prediction: str, requested_tick: int) -> str | None:
        """System 2 answered (for a request made at `requested_tick`); returns a release reason or None."""
        active = self.active
        if active is None or requested_tick <= active.started_tick or active.chunks < 1:
            return None
        if not prediction or prediction == (active.predicted or ""):
            return None
        if prediction == active.coached:
            return "System 2 agrees with the coached subtask"
        return f"System 2 moved on to {prediction!r}"

    def on_progress(self) -> str | None:
        if self.active is None or self.active.chunks < 1:
            return None
        return "task progress advanced"
