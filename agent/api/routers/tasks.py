"""Tasks: create (idempotent, rate-limited), list, get, events, pause, resume, abort.

The runtime's record is the freshest truth while the robot process knows the task; the store is the truth after
that (and across restarts). Reads merge the two so a client never sees a state older than the robot's.
"""

from __future__ import annotations

import hashlib
import json
import uuid

from fastapi import APIRouter, Depends, Header, Query, Response

from agent.api.auth import Permission, require
from agent.api.context import ApiContext, get_ctx
from agent.api.errors import ERROR_RESPONSES, ApiError, ErrorBody, not_found
from agent.api.ratelimit import retry_after_header
from agent.api.registry import runtime_error
from agent.api.schemas import EventList, TaskCreate, TaskList
from agent.store import NotFound, StoredTask, TokenInfo
from agent.types import TaskState

router = APIRouter(tags=["tasks"])
_read = require(Permission.TASKS_READ)
_write = require(Permission.TASKS_WRITE)

MAX_IDEMPOTENCY_KEY = 255
_PAST = {"pause": "paused", "resume": "resumed", "abort": "aborted"}


def stored_task(ctx: ApiContext, task_id: str) -> StoredTask:
    """The task merged from store and runtime (runtime wins on live fields); 404 when neither knows it."""
    try:
        stored = ctx.store.get_task(task_id)
    except NotFound:
        stored = None
    live = None
    if stored is None or stored.robot_id in ctx.registry:
        runtime = ctx.registry.get(stored.robot_id) if stored is not None else None
        try:
            live = runtime.task(task_id) if runtime is not None else ctx.registry.find_live_task(task_id)
        except KeyError:
            live = None
    if live is None:
        if stored is None:
            raise not_found("task", task_id)
        return stored
    if stored is None:
        return StoredTask.from_record(live)
    return StoredTask.from_record(live, created_by=stored.created_by, updated_at=stored.updated_at)


def refresh(ctx: ApiContext, robot_id: str, task_id: str, created_by: str | None = None) -> StoredTask:
    """Persist the runtime's current record and return it."""
    record = ctx.registry.get(robot_id).task(task_id)
    return ctx.store.save_task(record, created_by=created_by)


def _request_hash(body: TaskCreate, text: str) -> str:
    request = {"robot_id": body.robot_id, "text": text}
    if body.allow_unlisted:
        request["allow_unlisted"] = True
    canonical = json.dumps(request, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@router.post(
    "/tasks",
    response_model=StoredTask,
    status_code=201,
    responses={
        200: {"model": StoredTask, "description": "Replay of an earlier request with the same Idempotency-Key"},
        422: {
            "model": ErrorBody,
            "description": "unknown_task (details: known_tasks), task_too_long_for_policy "
            "(details: tokens, limit), task_text_empty, task_text_too_long",
        },
        429: {"model": ErrorBody, "description": "queue_full (details: limit) or rate_limited"},
    },
    summary="Start a task on a robot (queued when the robot is busy)",
)
def create_task(
    body: TaskCreate,
    response: Response,
    idempotency_key: str | None = Header(
        default=None,
        description="Retry-safe creation: the same key with the same body returns the first task, not a new one.",
    ),
    ctx: ApiContext = Depends(get_ctx),
    token: TokenInfo = Depends(_write),
) -> StoredTask:
    text = " ".join(body.text.split())
    if not text:
        raise ApiError(422, "task_text_empty", "task text must contain words")
    if len(text) > ctx.config.max_task_text_chars:
        raise ApiError(
            422,
            "task_text_too_long",
            f"task text has {len(text)} characters; the limit is {ctx.config.max_task_text_chars}",
        )
    runtime = ctx.registry.get(body.robot_id)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY):
        raise ApiError(422, "invalid_idempotency_key", f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} characters")
    request_hash = _request_hash(body, text)

    def submit(task_id: str | None = None) -> StoredTask:
        wait_s = ctx.task_limiter.try_acquire(token.id)
        if wait_s > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"too many tasks created; limit is {ctx.config.task_rate_limit_per_minute} per minute",
                retry_after_header(wait_s),
            )
        try:
            record = runtime.submit(text, task_id=task_id, allow_unlisted=body.allow_unlisted)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise runtime_error(exc) from exc
        saved = ctx.store.save_task(record, created_by=token.id)
        response.headers["Location"] = f"/api/v1/tasks/{saved.id}"
        return saved

    if idempotency_key is None:
        return submit()
    # The key is claimed in the database before the task exists, so API processes sharing one database agree on
    # one winner (agent/store/store.py claim_idempotent); the winner creates the task under the id it claimed.
    new_id = uuid.uuid4().hex[:12]
    previous = ctx.store.claim_idempotent(token.id, idempotency_key, request_hash, new_id)
    if previous is None:
        try:
            return submit(new_id)
        except BaseException:
            ctx.store.release_idempotent(token.id, idempotency_key, new_id)
            raise
    previous_hash, task_id = previous
    if previous_hash != request_hash:
        raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was already used with a different request")
    if ctx.store.wait_for_task(task_id) is None:  # the winner is still creating it (or died doing so)
        raise ApiError(
            409, "idempotency_key_in_progress", "a request with this Idempotency-Key is still being processed"
        )
    response.status_code = 200
    response.headers["Idempotent-Replayed"] = "true"
    return stored_task(ctx, task_id)


@router.get("/tasks", response_model=TaskList, summary="List tasks, newest first (filter by robot and state)")
def list_tasks(
    robot_id: str | None = Query(default=None, max_length=128),
    state: list[TaskState] = Query(default=[], description="Repeat to match several states, e.g. state=queued"),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    ctx: ApiContext = Depends(get_ctx),
    _token=Depends(_read),
) -> TaskList:
    items = ctx.store.list_tasks(robot_id=robot_id, states=state, limit=limit, offset=offset)
    merged = []
    for item in items:
        if item.robot_id in ctx.registry and not item.state.terminal:
            item = stored_task(ctx, item.id)
        merged.append(item)
    return TaskList(items=merged, limit=limit, offset=offset)


@router.get("/tasks/{task_id}", response_model=StoredTask, responses=ERROR_RESPONSES, summary="One task")
def get_task(task_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)) -> StoredTask:
    return stored_task(ctx, task_id)


@router.get("/tasks/{task_id}/events", response_model=EventList, summary="A task's recorded events, oldest first")
def task_events(
    task_id: str,
    limit: int = Query(default=1000, ge=1, le=10_000),
    ctx: ApiContext = Depends(get_ctx),
    _token=Depends(_read),
) -> EventList:
    stored_task(ctx, task_id)  # 404 for unknown tasks rather than an empty list
    return EventList(items=ctx.store.task_events(task_id, limit=limit))


def _control(ctx: ApiContext, task_id: str, action: str) -> StoredTask:
    task = stored_task(ctx, task_id)
    if task.state.terminal or task.robot_id not in ctx.registry:
        raise ApiError(409, "task_finished", f"task {task_id!r} is {task.state.value}; it cannot be {_PAST[action]}")
    runtime = ctx.registry.get(task.robot_id)
    try:
        getattr(runtime, action)(task_id)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise runtime_error(exc) from exc
    return refresh(ctx, task.robot_id, task_id)


@router.post("/tasks/{task_id}/pause", response_model=StoredTask, summary="Pause a running task (robot holds still)")
def pause_task(task_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_write)) -> StoredTask:
    return _control(ctx, task_id, "pause")


@router.post("/tasks/{task_id}/resume", response_model=StoredTask, summary="Resume a paused task")
def resume_task(task_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_write)) -> StoredTask:
    return _control(ctx, task_id, "resume")


@router.post("/tasks/{task_id}/abort", response_model=StoredTask, summary="Abort a queued, running or paused task")
def abort_task(task_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_write)) -> StoredTask:
    return _control(ctx, task_id, "abort")
