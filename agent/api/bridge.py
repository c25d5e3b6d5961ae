"""Event bridge: orchestrator events -> store (task records, event log, episodes index) and webhooks.

Runs on its own thread with its own bus subscription, so database writes and webhook queueing never touch the
control loop (the bus drops this subscriber's oldest events rather than block the publisher). High-rate kinds
("state", "chunk") are for the live stream only and are not persisted.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from agent.api.episodes_index import index_episode, open_reader
from agent.api.registry import RuntimeRegistry
from agent.api.webhooks import WebhookDispatcher
from agent.store import Store

logger = logging.getLogger(__name__)

PERSISTED_KINDS = frozenset({"task_state", "subtask", "coaching", "safety", "worker", "error", "episode"})
TASK_REFRESH_KINDS = frozenset({"task_state", "subtask", "coaching", "episode"})
EPISODE_DONE_PHASES = frozenset({"finished", "end", "ended", "saved", "closed", "finish"})


class EventBridge:
    def __init__(self, bus: Any, store: Store, registry: RuntimeRegistry, webhooks: WebhookDispatcher):
        self.store = store
        self.registry = registry
        self.webhooks = webhooks
        self.processed = 0
        self._subscription = bus.subscribe(maxsize=10_000, kinds=PERSISTED_KINDS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-event-bridge", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (the runtimes' final task states), then stop."""
        self._stop.set()
        self._thread.join(timeout)
        for event in self._subscription.drain():
            self._handle_safely(event)
        self._subscription.close()

    @property
    def dropped(self) -> int:
        return self._subscription.dropped

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._subscription.get(timeout=0.2)
            if event is not None:
                self._handle_safely(event)

    def _handle_safely(self, event: Any) -> None:
        try:
            self.handle(event)
        except Exception:  # one bad event must not stop persistence of the rest
            logger.exception("event bridge failed on an event", extra={"kind": event.kind, "task_id": event.task_id})
        self.processed += 1

    def handle(self, event: Any) -> None:
        self.store.add_event(event.robot_id, event.task_id, event.kind, event.ts, event.data)
        task = None
        if event.task_id and event.kind in TASK_REFRESH_KINDS and event.robot_id in self.registry:
            try:
                record = self.registry.get(event.robot_id).task(event.task_id)
            except KeyError:
                record = None
            if record is not None:
                task = self.store.save_task(record)
        if event.kind == "episode":
            self._index_episode(event)
        if event.kind == "task_state":
            payload = dict(event.data)
            if task is not None:
                payload["task"] = task.model_dump(mode="json")
            self.webhooks.notify("task_state", event.robot_id, event.task_id, payload)
        elif event.kind in ("safety", "episode"):
            self.webhooks.notify(event.kind, event.robot_id, event.task_id, dict(event.data))

    def _index_episode(self, event: Any) -> None:
        data = event.data
        index = data.get("episode_index")
        phase = str(data.get("phase", "")).lower()
        if index is None or (phase and phase not in EPISODE_DONE_PHASES and data.get("outcome") is None):
            return
        root = self.registry.episodes_root(event.robot_id) or (Path(data["path"]) if data.get("path") else None)
        if root is None:
            return
        # The recorder has flushed when it announces the end: the dataset is the truth. An episode it did not
        # keep (no frames recorded, discarded) is not indexed.
        try:
            info = next((e for e in open_reader(Path(root)).episodes if int(e.index) == int(index)), None)
        except Exception:
            logger.warning("episode dataset not readable", extra={"root": str(root)}, exc_info=True)
            info = None
        if info is None:
            logger.info("episode not in the dataset; not indexed", extra={"episode_index": index, "root": str(root)})
            return
        index_episode(self.store, event.robot_id, Path(root), info, task_id=event.task_id)
