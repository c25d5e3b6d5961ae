"""The active task's lifecycle on the robot: begin, pause/resume with reasons, subtasks, finish.

Every change of the active task goes through here so that the four places a person can look (the task record,
the events, the episode's events, the robot) always agree: a pause is noted in the record with its cause and
reason, published as a task_state event, written to the episode, and the robot holds; a finish holds the robot,
stands the safety layer down (a deliberate stop is not a lost controller: no watchdog alarm), saves the episode and
then ends the record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agent.admission import NO_SUCCESS_CHECK
from agent.pauses import PauseCause, PauseCauses, PauseChange
from agent.protocols import ControlledRobot
from agent.publisher import RuntimeEvents
from agent.recording import GuardedRecorder
from agent.task_queue import TaskQueue, TaskRecord
from agent.types import PauseEntry, SubtaskSource, TaskState
from robots.types import Observation

OUTCOMES = {
    TaskState.SUCCEEDED: "succeeded",
    TaskState.FAILED: "failed",
    TaskState.ABORTED: "aborted",
    TaskState.STOPPED_BY_ESTOP: "stopped-by-e-stop",
    TaskState.INTERRUPTED: "interrupted",
}


@dataclass
class ActiveTask:
    """The running (or paused) task as the control thread sees it."""

    record_id: str
    text: str
    started_s: float
    epoch: int
    subtask: str | None = None
    subtask_source: SubtaskSource | None = None
    policy_subtask: str | None = None  # System 2's latest opinion, kept even while a coach overrides it
    success_check: bool = True
    last_progress: float | None = None
    causes: PauseCauses = field(default_factory=PauseCauses)


class TaskLifecycle:
    def __init__(
        self, queue: TaskQueue, robot: ControlledRobot, recorder: GuardedRecorder, events: RuntimeEvents
    ) -> None:
        self.queue = queue
        self.robot = robot
        self.recorder = recorder
        self.events = events
        self.active: ActiveTask | None = None
        self._epoch = 0

    @property
    def active_id(self) -> str | None:
        return self.active.record_id if self.active else None

    @property
    def paused(self) -> bool:
        return self.active is not None and self.active.causes.paused

    # ------------------------------------------------------------------ begin / finish
    def begin(self, record: TaskRecord, reset_robot: bool, seed: int | None) -> Observation | None:
        """Start `record` on the robot; returns the observation after the scene reset (None without a reset)."""
        self.queue.transition(record.id, TaskState.RUNNING, None)  # InvalidTransition if aborted meanwhile
        self._epoch += 1
        active = ActiveTask(record_id=record.id, text=record.text, started_s=time.monotonic(), epoch=self._epoch)
        self.active = active
        try:
            self.robot.set_task(record.text)
        except ValueError:
            active.success_check = False  # an unlisted task: it runs, and its record says so
            if NO_SUCCESS_CHECK not in record.warnings:
                self.queue.update(record.id, warnings=[*record.warnings, NO_SUCCESS_CHECK])
        except Exception as exc:
            active.success_check = False
            self.events.error(record.id, "robot", f"set_task failed: {exc}")
        obs = self.robot.reset(seed) if reset_robot else None
        episode_index = self.recorder.start(record.text)
        self.queue.update(record.id, episode_index=episode_index)
        self.events.episode(record.id, "started", episode_index)
        active.last_progress = self.progress()
        return obs

    def finish(self, state: TaskState, reason: str, success: bool | None = None) -> TaskRecord | None:
        active = self.active
        if active is None:
            return None
        self.active = None
        try:
            self.robot.stand_down()
        except Exception as exc:
            self.events.error(active.record_id, "robot", f"stand down failed: {exc}")
        outcome = OUTCOMES[state]
        path = self.recorder.finish(outcome, success)
        path_text = str(path) if path is not None else None
        saved = {} if path_text else {"episode_index": None}  # an empty episode is dropped; its index is reused
        record = self.queue.transition(
            active.record_id, state, reason, outcome=outcome, success=success, episode_path=path_text, **saved
        )
        self.events.episode(active.record_id, "finished", record.episode_index, path_text, outcome, success)
        return record

    def change_text(self, text: str) -> TaskRecord:
        """The operator changed the active task's text: new success check, System 2 starts over."""
        active = self.active
        assert active is not None
        text = " ".join(str(text).split())
        if not text:
            raise ValueError("task text must be a non-empty string")
        active.text, active.success_check, active.policy_subtask = text, True, None
        try:
            self.robot.set_task(text)
        except Exception as exc:
            active.success_check = False
            self.events.error(active.record_id, "robot", f"robot has no success check for the new task: {exc}")
        self.recorder.event("task_change", text)
        active.last_progress = self.progress()
        return self.queue.update(active.record_id, text=text)

    # ------------------------------------------------------------------ pause causes
    def hold(self, cause: PauseCause, reason: str) -> PauseChange | None:
        """Add a pause cause (no-op without an active task)."""
        if self.active is None:
            return None
        change = self.active.causes.add(cause, reason)
        if change is not None:
            self._apply(change, "pause" if change.started_pause else "reason")
        return change

    def release(self, cause: PauseCause, resume_reason: str) -> PauseChange | None:
        """Remove a pause cause; the task runs again when it was the last one."""
        if self.active is None:
            return None
        change = self.active.causes.remove(cause, resume_reason)
        if change is not None:
            self._apply(change, "resume" if change.ended_pause else "reason")
        return change

    def _apply(self, change: PauseChange, action: str) -> None:
        active = self.active
        assert active is not None
        if action == "reason" and not change.shown_reason_changed:
            return  # a cause below the one shown came or went: nothing a person would see changed
        reason = change.reason or ""
        self.queue.note_pause(active.record_id, PauseEntry(action=action, cause=change.cause.value, reason=reason))
        if action == "pause":
            self.recorder.event("pause", reason)
            self.queue.transition(active.record_id, TaskState.PAUSED, reason)
        elif action == "resume":
            self.recorder.event("resume", reason)
            self.queue.transition(active.record_id, TaskState.RUNNING, reason)
        else:  # still paused, another reason on top: same state, new reason
            record = self.queue.update(active.record_id, reason=reason)
            self.events.task_state(
                record.id, record.state.value, record.state.value, reason, record.text, change.cause.value
            )

    # ------------------------------------------------------------------ subtasks and the robot's signals
    def set_subtask(self, text: str, source: SubtaskSource, tick: int) -> bool:
        """Make `text` the subtask the low level follows; False when it already is."""
        active = self.active
        if active is None or (active.subtask == text and active.subtask_source == source):
            return False
        previous = active.subtask
        active.subtask, active.subtask_source = text, source
        self.queue.push_subtask(active.record_id, text, source)
        self.recorder.subtask(text, source.value)
        self.events.subtask(active.record_id, text, source, previous, tick)
        return True

    def success(self) -> bool | None:
        try:
            return self.robot.task_success()
        except Exception as exc:
            self.events.error(self.active_id, "robot", f"task_success failed: {exc}")
            return None

    def progress(self) -> float | None:
        try:
            return self.robot.task_progress()
        except Exception:
            return None
