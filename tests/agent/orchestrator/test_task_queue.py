"""TaskQueue: FIFO order, validated transitions, every change announced to the listener."""

import pytest

from agent.task_queue import TaskQueue, UnknownTask
from agent.types import InvalidTransition, SubtaskSource, TaskState


def test_fifo_transitions_and_announcements() -> None:
    seen = []
    q = TaskQueue("r1", on_transition=lambda record, previous: seen.append((record.id, previous, record.state)))
    q.add("put the can in the sink", "a")
    b = q.add("  clear   the table ", "b")
    assert b.text == "clear the table"
    assert q.next_queued().id == "a" and q.active() is None
    q.transition("a", TaskState.RUNNING)
    assert q.active().id == "a" and q.next_queued().id == "b" and q.queued_count() == 1
    q.push_subtask("a", "pick up the can", SubtaskSource.POLICY)
    q.push_subtask("a", "put it in the sink", SubtaskSource.COACH)
    q.transition("a", TaskState.PAUSED, "paused by operator")
    assert q.get("a").reason == "paused by operator"
    done = q.transition("a", TaskState.ABORTED, "aborted", outcome="aborted")
    assert done.ended_at is not None and done.outcome == "aborted"
    assert all(s.ended_at is not None for s in done.subtasks)
    assert [s.source for s in done.subtasks] == [SubtaskSource.POLICY, SubtaskSource.COACH]
    assert seen == [
        ("a", None, TaskState.QUEUED),
        ("b", None, TaskState.QUEUED),
        ("a", TaskState.QUEUED, TaskState.RUNNING),
        ("a", TaskState.RUNNING, TaskState.PAUSED),
        ("a", TaskState.PAUSED, TaskState.ABORTED),
    ]
    assert [r.id for r in q.interrupt_all("shutdown")] == ["b"]
    assert q.get("b").state is TaskState.INTERRUPTED


def test_bad_input_and_bad_transitions_are_clear_errors() -> None:
    q = TaskQueue("r1")
    with pytest.raises(ValueError, match="non-empty"):
        q.add("   ")
    q.add("x", "t1")
    with pytest.raises(ValueError, match="already exists"):
        q.add("y", "t1")
    with pytest.raises(InvalidTransition, match="'queued' to 'paused'"):
        q.transition("t1", TaskState.PAUSED)
    with pytest.raises(UnknownTask, match="no task 'nope'"):
        q.get("nope")
    assert q.get("t1").state is TaskState.QUEUED  # nothing lost by the failed transition
