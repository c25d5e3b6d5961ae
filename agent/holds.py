"""What people do to the robot's motion: pause, resume, e-stop and its release, and the queue hold after an e-stop.

The rules an operator relies on: an e-stop pauses the active task (reason "e-stop", the task is not lost) and holds
the queue; releasing the e-stop moves nothing: the task stays paused with the operator as its reason and queued
tasks stay queued, until an operator resumes the task, starts a queued one, or starts a new one on an empty queue.
Resume is refused while the e-stop is latched. Applied on the control thread (agent/control_commands.py).
"""

from __future__ import annotations

from agent.orchestrator_config import RuntimeCommandError
from agent.pauses import PauseCause
from agent.protocols import ControlledRobot
from agent.task_lifecycle import TaskLifecycle

PAUSED_BY_OPERATOR = "paused by operator"
RESUMED_BY_OPERATOR = "resumed by operator"
AFTER_ESTOP = "e-stop released: waiting for an operator to resume"


class OperatorHolds:
    def __init__(self, lifecycle: TaskLifecycle, robot: ControlledRobot) -> None:
        self.lifecycle = lifecycle
        self.robot = robot
        self.queue_held = False  # after an e-stop nothing starts by itself

    def may_start_next(self) -> bool:
        return not self.robot.estopped and not self.queue_held

    def task_submitted(self, robot_idle: bool, queue_empty: bool) -> None:
        """A person started a new task: on an otherwise empty, released robot that is the go-ahead."""
        if self.queue_held and robot_idle and queue_empty and not self.robot.estopped:
            self.queue_held = False

    def pause(self) -> None:
        self.lifecycle.hold(PauseCause.OPERATOR, PAUSED_BY_OPERATOR)

    def check_may_resume(self, robot_id: str) -> None:
        if self.robot.estopped:
            raise RuntimeCommandError(f"robot {robot_id} is e-stopped; reset the e-stop before resuming")

    def resume(self) -> None:
        """The operator resumes the active task (and so releases the queue hold)."""
        self.queue_held = False
        self.lifecycle.release(PauseCause.ESTOP, RESUMED_BY_OPERATOR)
        self.lifecycle.release(PauseCause.OPERATOR, RESUMED_BY_OPERATOR)

    def start_held(self) -> None:
        """The operator starts a queued task by hand."""
        self.queue_held = False

    def estop_latched(self) -> None:
        """From the caller's thread, at once: nothing may start from now on."""
        self.queue_held = True

    def estop(self, reason: str) -> bool:
        """Control thread: pause the active task with the e-stop as its reason; True when there was one."""
        if self.lifecycle.active is None:
            return False
        self.lifecycle.recorder.event("estop", reason)
        self.lifecycle.hold(PauseCause.ESTOP, f"e-stop: {reason}")
        return True

    def estop_released(self) -> None:
        """The latch is off; the task stays paused, now waiting for an operator (added first: it never runs between)."""
        active = self.lifecycle.active
        if active is not None and PauseCause.ESTOP in active.causes:
            self.lifecycle.hold(PauseCause.OPERATOR, AFTER_ESTOP)
            self.lifecycle.release(PauseCause.ESTOP, AFTER_ESTOP)
