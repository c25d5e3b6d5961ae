"""Which subtask the low level follows: System 2's answers on its schedule, with a coach's override on top.

System 2 runs on its own background caller (agent/system2_schedule.py decides when); a coach's utterance replaces
the subtask at once and holds (agent/coaching.py) until the coach releases it or says something else, the step is
achieved, or the optional time limit runs out. While coached, System 2 is still asked and its opinion is kept
(status `policy_subtask`) so the console can show what it would do, and so that the relabel record
`Policy: {predicted} → Relabeled: {coached}` names what it predicted, but its answers never end the override.

Errors: a transient one (server gone, timed out) pauses a task that has no subtask yet and is retried after
`retry_s`; a permanent one (the request refused) ends the task as failed with the message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.coaching import CoachingState, interpret, relabel_text
from agent.executor import BackgroundCaller
from agent.failures import classify
from agent.pauses import PauseCause
from agent.publisher import RuntimeEvents
from agent.system2 import DONE, System2Backend
from agent.system2_schedule import System2Question, System2Schedule
from agent.task_lifecycle import ActiveTask, TaskLifecycle
from agent.types import SubtaskSource, TaskState
from robots.types import Observation


@dataclass(frozen=True)
class Ending:
    """System 2 ended the task (said done, or refused it for good): the runtime finishes it with this."""

    state: TaskState
    reason: str
    success: bool | None = None


class SubtaskDriver:
    def __init__(
        self,
        robot_id: str,
        system2: System2Backend,
        lifecycle: TaskLifecycle,
        events: RuntimeEvents,
        every_k_chunks: int,
        retry_s: float,
        coach_hold_s: float | None,
        retarget: Callable[[], None],
    ) -> None:
        self.system2 = system2
        self.lifecycle = lifecycle
        self.events = events
        self.coaching = CoachingState(coach_hold_s)
        self.schedule = System2Schedule(every_k_chunks, retry_s)
        self._retarget = retarget  # the executor asks for a chunk of the new subtask at once
        self._caller = BackgroundCaller(f"{robot_id}-system2", max_pending=2)

    def new_task(self) -> None:
        self.coaching.release()
        self.schedule = System2Schedule(self.schedule.every_k_chunks, self.schedule.retry_s)

    def close(self) -> None:
        self._caller.stop(timeout=2.0)

    def _set(self, text: str, source: SubtaskSource, tick: int) -> None:
        if self.lifecycle.set_subtask(text, source, tick):
            self._retarget()

    # ------------------------------------------------------------------ System 2
    def ask(self, tick: int, obs: Observation, now: float) -> None:
        """Send the next System-2 question when it is due (not while the robot is held by anything else)."""
        active = self.lifecycle.active
        if active is None or not self.system2.autonomous:
            return
        top = active.causes.top
        if top is not None and top not in (PauseCause.SYSTEM2, PauseCause.COACH):
            return  # nothing moves; ask again once the robot runs
        if not self.schedule.due(now, active.subtask is not None):
            return
        question = System2Question(active.epoch, tick, active.text)
        if self._caller.submit(question, lambda: self.system2.predict(obs, question.task)):
            self.schedule.asked()

    def collect(self, tick: int) -> Ending | None:
        for result in self._caller.poll():
            question: System2Question = result.tag
            active = self.lifecycle.active
            if active is None or question.epoch != active.epoch:
                continue
            self.schedule.answered()
            if result.error is not None:
                failure = classify(result.error)
                self.events.error(active.record_id, "system2", failure.message)
                if not failure.transient:
                    return Ending(TaskState.FAILED, f"System 2 refused the task: {failure.message}")
                self.schedule.failed(time.monotonic())
                if active.subtask is None:
                    self.lifecycle.hold(PauseCause.SYSTEM2, f"System 2 unavailable: {failure.message}")
                continue
            if question.task != active.text:
                continue  # answered for the task text before change_task
            self.lifecycle.release(PauseCause.SYSTEM2, "System 2 answered again")
            prediction = str(result.value or "")
            if prediction == DONE and self.coaching.active is None:
                return self._done(active)  # while a coach holds the task, "done" is only System 2's opinion
            if not prediction:
                if active.subtask is not None:
                    continue
                prediction = active.text  # no opinion yet: let the low level follow the task itself
            active.policy_subtask = prediction
            if self.coaching.active is None:
                self._set(prediction, SubtaskSource.POLICY, tick)
        return None

    def _done(self, active: ActiveTask) -> Ending:
        success = self.lifecycle.success() if active.success_check else None
        if success is False:
            return Ending(TaskState.FAILED, "System 2 said done but the task's success check failed", False)
        return Ending(
            TaskState.SUCCEEDED, "System 2 said done" + (" and the success check passed" if success else ""), success
        )

    # ------------------------------------------------------------------ coaching
    def coach(self, active: ActiveTask, utterance: str, tick: int) -> dict[str, Any]:
        command = interpret(utterance)
        if command.kind == "release":
            was = self.coaching.active
            self.release(f"coach said {command.text!r}", tick)
            return {"kind": "release", "released": was is not None, "tick": tick}
        predicted = active.policy_subtask or (active.subtask if active.subtask_source is SubtaskSource.POLICY else None)
        self.coaching.start(command.text, predicted, tick, time.monotonic())
        relabel = relabel_text(predicted, command.text)
        self.lifecycle.recorder.event("interjection", relabel)
        self._set(command.text, SubtaskSource.COACH, tick)
        self.lifecycle.release(PauseCause.COACH, "a coach gave a subtask")
        self.events.coaching(
            active.record_id,
            action="override",
            tick=tick,
            utterance=utterance,
            predicted=predicted,
            coached=command.text,
            relabel=relabel,
            hold_s=self.coaching.hold_s,
        )
        return {
            "kind": "subtask",
            "subtask": command.text,
            "predicted": predicted,
            "relabel": relabel,
            "tick": tick,
            "hold_s": self.coaching.hold_s,
        }

    def release(self, reason: str, tick: int) -> None:
        """End the override; System 2's latest opinion (the task text if it never had one) takes over at once."""
        ended = self.coaching.release()
        active = self.lifecycle.active
        if ended is None or active is None:
            return
        self.events.coaching(
            active.record_id,
            action="released",
            tick=tick,
            predicted=ended.predicted,
            coached=ended.coached,
            reason=reason,
        )
        if self.system2.autonomous:
            self._set(active.policy_subtask or active.text, SubtaskSource.POLICY, tick)
        self.schedule.look_again()

    def on_chunk(self, for_current_subtask: bool) -> None:
        if for_current_subtask:
            self.coaching.on_chunk()
        self.schedule.on_chunk()

    def check_time(self, now: float, tick: int) -> None:
        reason = self.coaching.check_time(now)
        if reason:
            self.release(reason, tick)

    def progress_advanced(self, tick: int) -> None:
        """A subtask boundary: the coached step (if any) is achieved, and System 2 should look again."""
        reason = self.coaching.on_progress()
        if reason:
            self.release(reason, tick)
        self.schedule.look_again()

    def task_changed(self) -> None:
        self.coaching.release()
        self.schedule.look_again()
