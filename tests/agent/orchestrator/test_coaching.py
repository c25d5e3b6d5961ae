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
    assert relabel_text("put plate in sink", "put plate on rack") == "Policy: put plate in sink → Relabeled: put plate on rack"
    assert relabel_text(None, "open drawer") == "Policy: (none) → Relabeled: open drawer"


def test_release_after_n_chunks() -> None:
    state = CoachingState(release_after_chunks=3)
    state.start("open drawer", "pick up cup", tick=10)
    assert state.on_chunk() is None and state.on_chunk() is None
    assert "3 chunks" in state.on_chunk()


def test_release_when_system2_moves_on_only_after_a_coached_chunk() -> None:
    state = CoachingState(release_after_chunks=10)
    state.start("open drawer", "pick up cup", tick=10)
    assert state.on_system2("close drawer", requested_tick=12) is None  # nothing coached ran yet
    state.on_chunk()
    assert state.on_system2("close drawer", requested_tick=9) is None  # asked before the coach spoke
    assert state.on_system2("pick up cup", requested_tick=12) is None  # still the overridden prediction
    assert "moved on" in state.on_system2("close drawer", requested_tick=12)
    assert "agrees" in state.on_system2("open drawer", requested_tick=12)
    assert state.on_progress() == "task progress advanced"
    assert state.release().coached == "open drawer" and state.active is None
