"""EventBus: fan-out, per-subscriber drop-oldest bounded queues, filters, publishers that never block."""

import threading
import time

import pytest

from agent.events import EVENT_KINDS, EVENT_PAYLOADS, Event, EventBus


def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    for i in range(5):
        bus.emit("state", "r1", tick=i)
    assert [e.data["tick"] for e in first.drain()] == [0, 1, 2, 3, 4]
    assert [second.get(timeout=1).data["tick"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert second.get(timeout=0.01) is None


def test_full_queue_drops_oldest_and_counts_drops() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3)
    for i in range(10):
        bus.publish(Event(kind="chunk", robot_id="r1", data={"chunk_id": i}))
    assert slow.dropped == 7
    assert [e.data["chunk_id"] for e in slow.drain()] == [7, 8, 9]


def test_publisher_never_blocks_on_a_stalled_subscriber() -> None:
    bus = EventBus()
    bus.subscribe(maxsize=1)  # never read
    started = time.monotonic()
    for i in range(20000):
        bus.emit("state", "r1", tick=i)
    assert bus.published == 20000
    assert time.monotonic() - started < 30  # would hang forever if publish blocked


def test_filters_by_kind_and_robot() -> None:
    bus = EventBus()
    sub = bus.subscribe(kinds={"subtask"}, robot_id="a")
    bus.emit("subtask", "b", text="x")
    bus.emit("state", "a", tick=1)
    bus.emit("subtask", "a", text="pick up the cup")
    events = sub.drain()
    assert [(e.kind, e.robot_id, e.data["text"]) for e in events] == [("subtask", "a", "pick up the cup")]


def test_get_wakes_on_publish_from_another_thread_and_close_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    threading.Timer(0.05, lambda: bus.emit("worker", "r", status="lost", reason="x")).start()
    event = sub.get(timeout=5)
    assert event is not None and event.data["status"] == "lost"
    threading.Timer(0.05, sub.close).start()
    assert list(sub) == []
    assert sub.closed and bus.subscriber_count == 0
    bus.emit("worker", "r", status="restored", reason=None)  # no error after close


def test_kinds_documented_and_bad_maxsize_rejected() -> None:
    assert set(EVENT_PAYLOADS) == set(EVENT_KINDS)
    with pytest.raises(ValueError, match="maxsize"):
        EventBus().subscribe(maxsize=0)
