"""Live page for one robot: the browser-side live view beside the task controls and coaching.

Layout (issue 17, judged at 1280x800): the live view (cameras, task, state, subtask) on the left and every control
(pause/resume/abort, start a task, coach) in a column on its right, both at the top of the page, with the e-stop
in the sidebar: an operator sees the robot while using a control, and nothing scrolls. The task's history (the
REST subtask trace and its pauses) sits under the live view, where it may grow.

Video, events and plots come from the live WebSocket in the browser (ui/static/live_view.html); this script
only draws controls and once-per-second REST summaries of the active task, so reruns never touch the video.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import streamlit as st

from ui import session, voice
from ui.api_client import ApiError, ApiUnreachable
from ui.compat import FULL_WIDTH, embed_html
from ui.components import live_view_html
from ui.session import Need, may
from ui.settings import ConsoleSettings
from ui.views.models import CoachingView, PauseEntry, RobotInfo, StatusView, SubtaskEntry, TaskView

LIVE_HEIGHT = 1130  # the live view's own content height (cameras, task box, safety, timeline, plots, state)
SETTLE_S = 1.5  # how long "Start task" waits to see the new task leave "queued" before saying where it is

PAGE_CSS = """
<style>
/* Streamlit's default top padding is ~6rem: give it to the live view so the controls sit above the fold. */
[data-testid="stMainBlockContainer"], .block-container { padding-top: 2.6rem !important; padding-bottom: 1rem !important;
  padding-left: 1.5rem !important; padding-right: 1.5rem !important; }
.st-key-controls [data-testid="stForm"] { padding: .6rem .75rem; }
.st-key-controls [data-testid="stVerticalBlock"] { gap: .45rem; }
.st-key-controls h5 { padding: 0; margin: 0; }
</style>
"""


def _call(label: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one API call for a control; show what went wrong instead of raising."""
    try:
        return fn(*args)
    except ApiUnreachable as exc:
        st.error(f"{label}: API unreachable ({exc})")
    except ApiError as exc:
        st.error(f"{label}: {exc.message} ({exc.code})")
    return None


def _settled(task: TaskView) -> TaskView:
    """The task as it stands once the robot has picked it up (or SETTLE_S later): the toast tells the truth.

    POST /tasks answers "queued" even when the robot starts it on its next tick.
    """
    deadline = time.monotonic() + SETTLE_S
    while task.state == "queued" and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            task = TaskView.model_validate(session.client().task(task.id))
        except (ApiError, ApiUnreachable):
            break
    return task


def start_message(task: TaskView) -> str:
    """What the operator is told after pressing Start: the task's actual state."""
    if task.state == "running":
        return f"Task running: {task.text}"
    if task.state == "queued":
        return f"Task queued (another task is active or the queue is held): {task.text}"
    return f"Task {task.state}: {task.text}" + (f" ({task.reason})" if task.reason else "")


def start_task_form(robot: RobotInfo) -> None:
    tasks = robot.description.tasks
    with st.form("start_task", clear_on_submit=True, border=True):
        st.markdown("##### Start a task")
        text = st.text_input("Task", placeholder=robot.task_example(), key="task_text")
        suggestion = (
            st.selectbox(
                "…or pick one this robot knows", tasks, index=None, placeholder="choose a task", key="task_suggestion"
            )
            if tasks
            else None
        )
        allow_unlisted = bool(tasks) and st.checkbox(
            "Allow a task it does not list (no success check)", key="task_allow_unlisted"
        )
        submitted = st.form_submit_button("Start task", type="primary")
    if not submitted:
        return
    chosen = text.strip() or (suggestion or "")
    if not chosen:
        st.warning("Type a task or pick one from the list.")
        return
    created = _call("Start task", session.client().create_task, robot.id, chosen, uuid.uuid4().hex, allow_unlisted)
    if created:
        task = _settled(TaskView.model_validate(created))
        st.toast(start_message(task))
        for warning in task.warnings:
            st.warning(f"Warning: {warning}")


def coaching_form(robot: RobotInfo, settings: ConsoleSettings) -> None:
    with st.form("coaching", clear_on_submit=True, border=True):
        st.markdown("##### Coach", help="Tell the robot what to do next; it overrides System 2's subtask.")
        utterance = st.text_input("Say", placeholder=robot.coaching_example(), key="coach_text")
        submitted = st.form_submit_button("Send coaching")
    spoken = voice.push_to_talk(settings) if voice.available(settings) else None
    utterance = spoken or utterance
    if (submitted or spoken) and utterance.strip():
        api = session.client()
        body = _call("Coaching", api.robot_status, robot.id)
        task_id = StatusView.model_validate(body).task_id if body else None
        if not task_id:
            st.warning("No task is running: coaching needs an active task.")
            return
        if _call("Coaching", api.coach, task_id, utterance.strip()):
            st.toast(f"Coached: {utterance.strip()}")


def _status(robot_id: str) -> StatusView | None:
    try:
        return StatusView.model_validate(session.client().robot_status(robot_id))
    except (ApiUnreachable, ApiError) as exc:
        st.error(f"Status unavailable: {exc}")
        return None


@st.fragment(run_every=1.0)
def active_task_panel(robot_id: str) -> None:
    """The active task's state and why, and its controls; refreshed every second without rerunning the page."""
    api = session.client()
    status = _status(robot_id)
    if status is None:
        return
    task_id = status.task_id
    if not task_id:
        st.markdown(f"**No active task** · queued: {status.queued}")
        held_queue_panel(robot_id, status)
        return
    state = status.task_state
    st.markdown(f"**{status.task_text}**  \nstate **{state}** · `{task_id}`")
    if state == "paused":
        st.warning(f"Paused: {status.reason or 'no reason given'}")
    elif status.reason:
        st.caption(status.reason)
    for warning in status.warnings:
        st.warning(f"Warning: {warning}")
    coaching = coaching_line(status.coaching)
    if coaching:
        st.markdown(coaching)
    if may(Need.TASKS_WRITE):
        pause_col, resume_col, abort_col = st.columns(3, gap="small")
        if pause_col.button("Pause", key="pause", disabled=state != "running", **FULL_WIDTH):
            _call("Pause", api.pause, task_id)
            st.rerun(scope="fragment")
        if resume_col.button("Resume", key="resume", disabled=state != "paused", **FULL_WIDTH):
            _call("Resume", api.resume, task_id)
            st.rerun(scope="fragment")
        if abort_col.button("Abort", key="abort", **FULL_WIDTH):
            _call("Abort", api.abort, task_id)
            st.rerun(scope="fragment")


@st.fragment(run_every=2.0)
def task_history_panel(robot_id: str) -> None:
    """The active task's subtask trace and pause/resume history from the API (the live view shows the same live)."""
    status = _status(robot_id)
    if status is None or not status.task_id:
        return
    try:
        task = TaskView.model_validate(session.client().task(status.task_id))
    except (ApiUnreachable, ApiError):
        return
    subtask_col, pause_col = st.columns(2)
    with subtask_col:
        st.markdown("**Subtask timeline** (policy = System 2, coach = a person)")
        st.markdown(timeline_markdown(task.subtasks) or "_no subtask yet_")
    if task.pauses:
        with pause_col:
            st.markdown("**Pauses and resumes** (why the robot stopped and went on)")
            st.markdown(pauses_markdown(task.pauses))


def held_queue_panel(robot_id: str, status: StatusView) -> None:
    """After an e-stop nothing starts by itself: say so, and let an operator start the next queued task."""
    if not status.queue_held or not status.queued:
        return
    st.warning("Queue held after the e-stop: nothing starts by itself.")
    if may(Need.TASKS_WRITE) and st.button("Start next queued task", key="start_held", type="primary"):
        api = session.client()
        queued = [t for t in (_call("Queue", api.queue, robot_id) or []) if t.get("state") == "queued"]
        if queued:
            _call("Start next queued task", api.resume, queued[0]["id"])
        st.rerun(scope="fragment")


def coaching_line(coaching: CoachingView | None) -> str:
    """The coaching state for the panel: what holds, what System 2 would do instead, and the countdown if any."""
    if coaching is None:
        return ""
    line = f"**Coached:** {coaching.coached}"
    if coaching.predicted:
        line += f" (System 2 would: {coaching.predicted})"
    if coaching.remaining_s is None:
        return line + " · holds until the coach releases it or the step is achieved"
    return line + f" · releases in **{round(coaching.remaining_s)} s**"


def _clock(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "--:--:--"


def pauses_markdown(pauses: list[PauseEntry]) -> str:
    """The task's pause/resume history, oldest first, each with its reason."""
    words = {"pause": "paused", "resume": "resumed", "reason": "still paused"}
    return "\n".join(f"- `{_clock(p.ts)}` {words.get(p.action, p.action)}: {p.reason}" for p in pauses)


def timeline_markdown(subtasks: list[SubtaskEntry]) -> str:
    """The task's subtask trace, oldest first, one bullet each with its start time and source."""
    ordered = sorted(subtasks, key=lambda s: s.started_at or 0.0)
    return "\n".join(f"- `{_clock(s.started_at)}` **{s.text}** ({s.source})" for s in ordered)


def _live_html(robot_id: str, settings: ConsoleSettings) -> str | None:
    """The live view for this browser session and robot, built once with a fresh single-use ticket.

    Kept in the session: Streamlit keeps the iframe (and its socket and timeline) only while the HTML is identical,
    so a new ticket per rerun would reload it on every click. Reloading the browser page starts a new session, and
    so a new ticket: that is how a viewer reconnects after the stream dropped (the live view says so).
    """
    key = f"live_html:{robot_id}:{settings.browser_api_url}:{settings.live_fps:g}"
    html = st.session_state.get(key)
    if html is None:
        ticket = _call("Live view", session.client().live_ticket)
        if ticket is None:
            return None
        html = st.session_state[key] = live_view_html(settings.browser_api_url, robot_id, ticket, fps=settings.live_fps)
    return html


def render(robot: RobotInfo | None, settings: ConsoleSettings) -> None:
    if robot is None:
        st.info("No robot to show.")
        return
    st.markdown(PAGE_CSS, unsafe_allow_html=True)
    view_col, controls_col = st.columns([2.2, 1], gap="small")
    with view_col:
        html = _live_html(robot.id, settings) if may(Need.LIVE) else None
        if html is not None:
            embed_html(html, height=LIVE_HEIGHT)
        elif may(Need.LIVE):
            st.subheader(f"Live: {robot.title}")
        else:
            st.subheader(f"Live: {robot.title}")
            st.info(f"Role `{session.identity().role}` may not watch the live stream; the task controls still work.")
        task_history_panel(robot.id)
    with controls_col, st.container(key="controls"):
        active_task_panel(robot.id)
        if may(Need.TASKS_WRITE):
            start_task_form(robot)
        if may(Need.COACHING):
            coaching_form(robot, settings)
