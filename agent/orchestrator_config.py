"""The orchestrator's knobs (a deployment's `orchestrator:` section) and its command error."""

from __future__ import annotations

from pydantic import Field

from agent.config import StrictModel


class OrchestratorConfig(StrictModel):
    """Knobs of the loop. Defaults suit the simulated kitchen at 20 Hz with 50-step chunks."""

    control_hz: float | None = Field(default=None, gt=0, description="None = the robot's describe().control_hz")
    every_k_chunks: int = Field(default=4, ge=1, description="re-ask System 2 after this many chunks")
    execute_horizon: int | None = Field(default=None, ge=1, description="ask for a new chunk after this many actions")
    rtc_margin_ticks: int = Field(default=3, ge=0)
    max_in_flight: int = Field(
        default=2, ge=1, le=4, description="chunk requests that may overlap (each on its own worker connection)"
    )
    late_grace_fraction: float = Field(
        default=0.6, ge=0, le=0.9, description="part of a tick to wait for an imminent chunk before holding"
    )
    delay_buffer: int = Field(default=10, ge=1)
    worker_late_s: float = Field(default=2.0, gt=0, description="pause when a chunk is this late and none is ready")
    worker_resume_fraction: float = Field(
        default=0.5, gt=0, le=1, description="a late pause ends when replies come within this part of worker_late_s"
    )
    worker_resume_replies: int = Field(default=2, ge=1, description="... this many replies in a row")
    worker_probe_s: float = Field(default=0.5, gt=0)
    system2_retry_s: float = Field(default=2.0, gt=0)
    coach_hold_s: float | None = Field(
        default=None, gt=0, description="release a coached subtask after this long (None: until released/achieved)"
    )
    max_queued: int = Field(default=20, ge=1, description="queued tasks per robot; more are refused (429 queue_full)")
    max_task_s: float | None = Field(default=600.0, gt=0, description="time limit per task (None = none)")
    success_check_every: int = Field(default=10, ge=1, description="ticks between robot.task_success() checks")
    reset_robot_on_task: bool = True
    seed: int | None = None
    state_event_every: int = Field(default=5, ge=1)
    publish_chunk_actions: bool = True
    idle_observe_hz: float = Field(default=1.0, ge=0, description="observation rate while idle (live view)")
    command_timeout_s: float = Field(default=10.0, gt=0)


class RuntimeCommandError(RuntimeError):
    """A runtime command could not be applied (e.g. coaching a task that is not running)."""
