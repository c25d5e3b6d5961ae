"""Coaching: a person tells the running task what to do next ("pick up the cup"); it overrides System 2."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent.api.auth import Permission, require
from agent.api.context import ApiContext, get_ctx
from agent.api.errors import ApiError
from agent.api.registry import runtime_error
from agent.api.routers.tasks import stored_task
from agent.api.schemas import CoachIn, CoachOut
from agent.store.store import to_jsonable
from agent.types import TaskState

router = APIRouter(tags=["coaching"])


def coach_task(ctx: ApiContext, task_id: str, utterance: str) -> CoachOut:
    """Shared by REST and the live WebSocket: validate the task can take coaching, then hand it over."""
    utterance = " ".join(utterance.split())
    if not utterance:
        raise ApiError(422, "utterance_empty", "coaching utterance must contain words")
    task = stored_task(ctx, task_id)
    if task.state.terminal or task.robot_id not in ctx.registry:
        raise ApiError(409, "task_finished", f"task {task_id!r} is {task.state.value}; coaching needs a running task")
    if task.state is TaskState.QUEUED:
        raise ApiError(409, "task_not_running", f"task {task_id!r} is still queued; coach it once it runs")
    try:
        result = ctx.registry.get(task.robot_id).coach(task_id, utterance)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise runtime_error(exc) from exc
    return CoachOut(task_id=task_id, utterance=utterance, result=to_jsonable(result))


@router.post("/tasks/{task_id}/coaching", response_model=CoachOut, summary="Coach a running or paused task")
def coach(
    task_id: str, body: CoachIn, ctx: ApiContext = Depends(get_ctx), _token=Depends(require(Permission.COACHING))
) -> CoachOut:
    return coach_task(ctx, task_id, body.utterance)
