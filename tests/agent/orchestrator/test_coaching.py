"""Coaching rules: what an utterance means, the relabel format, and when control returns to System 2."""

import pytest

from agent.coaching import CoachingState, interpret, relabel_text


def test_interpret_utterances() -> None:
    assert interpret("Pick up the red cup!").text == "pick up the red cup"
    assert interpret("pick up the red cup").kind == "subtask"
    assert interpret("OK, done.").kind == "release"
    assert interpret("Back to you").kind == "release"
    with pytest.raises(ValueError, match="non-empty"):
        interpret("   ")


def test_relabel_format_matches_the_paper() -> None:
    assert (
        relabel_text("put plate in sink", "put plate on rack")
        == "Policy: put plate in sink → Relabeled: put plate on rack"
    )
    assert relabel_text(None, "open drawer") == "Policy: (none) → Relabeled: open drawer"


def test_a_coached_subtask_holds_however_many_chunks_run_and_whatever_system2_thinks() -> None:
    state = CoachingState()
    state.start("open drawer", "pick up cup", tick=10, now=100.0)
    for _ in range(1000):
        state.on_chunk()
    assert state.active is not None and state.active.chunks == 1000
    assert state.check_time(now=100.0 + 86_400) is None  # no time limit configured: holds for a day
    assert state.remaining_s(now=150.0) is None
    assert not hasattr(state, "on_system2")  # System 2 disagreeing is not a reason to release


def test_progress_releases_only_after_a_coached_chunk_ran() -> None:
    state = CoachingState()
    state.start("open drawer", "pick up cup", tick=10, now=0.0)
    assert state.on_progress() is None  # progress from before the coached step ran is not its achievement
    state.on_chunk()
    assert state.on_progress() == "coached subtask 'open drawer' achieved (task progress advanced)"
    assert state.release().coached == "open drawer" and state.active is None
    assert state.on_progress() is None


def test_time_limit_counts_down_and_releases_exactly_at_the_limit() -> None:
    state = CoachingState(hold_s=45.0)
    state.start("open drawer", None, tick=0, now=1000.0)
    assert state.remaining_s(now=1000.0) == 45.0
    assert state.remaining_s(now=1030.5) == 14.5
    assert state.check_time(now=1044.9) is None
    assert state.check_time(now=1045.0) == "coaching time limit of 45 s reached"
    assert state.remaining_s(now=1100.0) == 0.0
    # a new utterance replaces the override and restarts the clock
    state.start("close drawer", "open drawer", tick=5, now=1050.0)
    assert state.remaining_s(now=1050.0) == 45.0 and state.active.coached == "close drawer"
    with pytest.raises(ValueError, match="hold_s"):
        CoachingState(hold_s=0)
