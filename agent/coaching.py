"""Verbal coaching: a person's utterance overrides System 2's subtask until the coach lets go.

This is π₀.₅'s "verbal instruction" data source: an expert "teleoperates" the low-level policy with
language, and every override is recorded as `Policy: {predicted} → Relabeled: {coached}` so the pair
(observation, better subtask) can train System 2 later.

A coached subtask stays in force until
- the coach releases it ("done", "continue", "back to you", ...) or says something else (a new override),
- the subtask is achieved: the robot's progress signal advances while the coached subtask runs, or
- an optional per-deployment time limit (`hold_s`) runs out; `remaining_s` feeds the console's countdown.
System 2 disagreeing is *not* a reason: the coach is there precisely because System 2 was wrong, so its
opinion is kept (shown as "System 2 would do ...") but never ends the override.
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
    """One active override: what the coach said, what System 2 had predicted, when it started."""

    coached: str
    predicted: str | None
    started_tick: int
    started_s: float  # monotonic seconds (the time limit counts from here)
    chunks: int = 0  # chunks of the coached subtask executed so far


class CoachingState:
    """The active override (if any) and when it ends; pure, used by the control thread only.

    `hold_s` None keeps an override until the coach releases it or the subtask is achieved.
    """

    def __init__(self, hold_s: float | None = None) -> None:
        if hold_s is not None and hold_s <= 0:
            raise ValueError(f"hold_s must be > 0 or None, got {hold_s}")
        self.hold_s = hold_s
        self.active: CoachOverride | None = None

    def start(self, coached: str, predicted: str | None, tick: int, now: float) -> CoachOverride:
        """A new override; it replaces any active one (the coach said something else)."""
        self.active = CoachOverride(coached=coached, predicted=predicted, started_tick=tick, started_s=now)
        return self.active

    def release(self) -> CoachOverride | None:
        ended, self.active = self.active, None
        return ended

    def on_chunk(self) -> None:
        """A chunk of the coached subtask started executing (progress only counts after one did)."""
        if self.active is not None:
            self.active.chunks += 1

    def on_progress(self) -> str | None:
        """The robot's progress signal advanced: the coached step is achieved (once it has actually run)."""
        if self.active is None or self.active.chunks < 1:
            return None
        return f"coached subtask {self.active.coached!r} achieved (task progress advanced)"

    def remaining_s(self, now: float) -> float | None:
        """Seconds left before the time limit releases the override (None: no override or no limit)."""
        if self.active is None or self.hold_s is None:
            return None
        return max(0.0, self.hold_s - (now - self.active.started_s))

    def check_time(self, now: float) -> str | None:
        """A release reason once the per-deployment time limit has run out."""
        remaining = self.remaining_s(now)
        if remaining is None or remaining > 0:
            return None
        return f"coaching time limit of {self.hold_s:g} s reached"
