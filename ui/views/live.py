"""Live page for one robot: the browser-side live view plus task controls and coaching.

Video, events and plots come from the live WebSocket in the browser (ui/static/live_view.html); this script
only draws controls and a once-per-second REST summary of the active task, so reruns never touch the video.
"""

from __future__ import annotations

import uuid
from typing import Any

import streamlit as st

from ui import session, voice
from ui.api_client import ApiError, ApiUnreachable
from ui.compat import FULL_WIDTH, embed_html
from ui.components import live_view_html
from ui.settings import ConsoleSettings

ACTIVE_STATES = ("running", "paused", "queued")
LIVE_HEIGHT = 610


def _call(label: str, fn, *args: Any) -> Any:
    """Run one API call for a control; show what went wrong instead of raising."""
    try:
        return fn(*args)
    except ApiUnreachable as exc:
        st.error(f"{label}: API unreachable ({exc})")
    except ApiError as exc:
        st.error(f"{label}: {exc.message} ({exc.code})")
    return None


def start_task_form(robot: dict[str, Any]) -> None:
    tasks = list((robot.get("description") or {}).get("tasks") or [])
    with st.form("start_task", clear_on_submit=True, border=True):
        st.markdown("**Start a task**")
        suggestion = st.selectbox("Suggestions from this robot's task list", ["(type your own below)", *tasks],
                                  key="task_suggestion")
        text = st.text_input("Task", placeholder=tasks[0] if tasks else "put the cup in the sink", key="task_text")
        allow_unlisted = bool(tasks) and st.checkbox(
            "Run it even if this robot does not list it (no success check)", key="task_allow_unlisted")
        submitted = st.form_submit_button("Start task", type="primary")
    if submitted:
        chosen = text.strip() or (suggestion if suggestion in tasks else "")
        if not chosen:
            st.warning("Type a task or pick a suggestion.")
            return
        created = _call("Start task", session.client().create_task, robot["id"], chosen, uuid.uuid4().hex,
                        allow_unlisted)
        if created:
            state = created.get("state")
            st.toast(f"Task {'queued' if state == 'queued' else 'started'}: {chosen}")
            for warning in created.get("warnings") or []:
                st.warning(f"Warning: {warning}")


def coaching_form(robot_id: str, settings: ConsoleSettings) -> None:
    with st.form("coaching", clear_on_submit=True, border=True):
        st.markdown("**Coach** (tell the robot what to do next; overrides System 2)")
        utterance = st.text_input("Say", placeholder="pick up the cup", key="coach_text")
        submitted = st.form_submit_button("Send coaching")
    spoken = voice.push_to_talk(settings) if voice.available(settings) else None
    utterance = spoken or utterance
    if (submitted or spoken) and utterance.strip():
        api = session.client()
        status = _call("Coaching", api.robot_status, robot_id) or {}
        task_id = status.get("task_id")
        if not task_id:
            st.warning("No task is running: coaching needs an active task.")
            return
        result = _call("Coaching", api.coach, task_id, utterance.strip())
        if result:
            st.toast(f"Coached: {utterance.strip()}")


@st.fragment(run_every=1.0)
def active_task_panel(robot_id: str) -> None:
    api, who = session.client(), session.identity()
    try:
        status = api.robot_status(robot_id)
    except (ApiUnreachable, ApiError) as exc:
        st.error(f"Status unavailable: {exc}")
        return
    task_id = status.get("task_id")
    if not task_id:
        st.info(f"No active task. Queued: {status.get('queued', 0)}")
        held_queue_panel(robot_id, status, who.can("tasks:write"))
        return
    state = status.get("task_state")
    st.markdown(f"**Active task** `{task_id}`: {status.get('task_text')}  \nstate **{state}**"
                + (f" ({status['reason']})" if status.get("reason") else ""))
    if state == "paused" and status.get("reason"):
        st.warning(f"Paused: {status['reason']}")
    for warning in status.get("warnings") or []:
        st.warning(f"Warning: {warning}")
    coaching = coaching_line(status.get("coaching"))
    if coaching:
        st.markdown(coaching)
    if who.can("tasks:write"):
        pause_col, resume_col, abort_col = st.columns(3)
        if pause_col.button("Pause", key="pause", disabled=state != "running", **FULL_WIDTH):
            _call("Pause", api.pause, task_id)
            st.rerun(scope="fragment")
        if resume_col.button("Resume", key="resume", disabled=state != "paused", **FULL_WIDTH):
            _call("Resume", api.resume, task_id)
            st.rerun(scope="fragment")
        if abort_col.button("Abort", key="abort", **FULL_WIDTH):
            _call("Abort", api.abort, task_id)
            st.rerun(scope="fragment")
    try:
        task = api.task(task_id)
    except (ApiUnreachable, ApiError):
        return
    st.markdown("**Subtask timeline** (who set each: policy = System 2, coach = a person)")
    st.markdown(timeline_markdown(task.get("subtasks", [])) or "_no subtask yet_")
    if task.get("pauses"):
        st.markdown("**Pauses and resumes** (why the robot stopped and went on)")
        st.markdown(pauses_markdown(task["pauses"]))


def held_queue_panel(robot_id: str, status: dict[str, Any], can_write: bool) -> None:
    """After an e-stop nothing starts by itself: say so, and let an operator start the next queued task."""
    if not status.get("queue_held") or not status.get("queued"):
        return
    st.warning("Queue held after the e-stop: nothing starts by itself.")
    if can_write and st.button("Start next queued task", key="start_held", type="primary"):
        api = session.client()
        queued = [t for t in (_call("Queue", api.queue, robot_id) or []) if t.get("state") == "queued"]
        if queued:
            _call("Start next queued task", api.resume, queued[0]["id"])
        st.rerun(scope="fragment")


def coaching_line(coaching: dict[str, Any] | None) -> str:
    """The coaching state for the panel: what holds, what System 2 would do instead, and the countdown if any."""
    if not coaching:
        return ""
    line = f"**Coached:** {coaching['coached']}"
    if coaching.get("predicted"):
        line += f" (System 2 would: {coaching['predicted']})"
    remaining = coaching.get("remaining_s")
    if remaining is None:
        return line + " · holds until the coach releases it or the step is achieved"
    return line + f" · releases in **{round(remaining)} s**"


def pauses_markdown(pauses: list[dict[str, Any]]) -> str:
    """The task's pause/resume history, oldest first, each with its reason."""
    import datetime as dt

    words = {"pause": "paused", "resume": "resumed", "reason": "still paused"}
    return "\n".join(
        f"- `{dt.datetime.fromtimestamp(p['ts']).strftime('%H:%M:%S')}` {words.get(p['action'], p['action'])}: "
        f"{p['reason']}" for p in pauses
    )


def timeline_markdown(subtasks: list[dict[str, Any]]) -> str:
    """The task's subtask trace, oldest first, one bullet each with its start time and source."""
    import datetime as dt

    def clock(ts: float | None) -> str:
        return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "--:--:--"

    ordered = sorted(subtasks, key=lambda s: s.get("started_at") or 0.0)
    return "\n".join(f"- `{clock(s.get('started_at'))}` **{s['text']}** ({s['source']})" for s in ordered)


def render(robot: dict[str, Any] | None, settings: ConsoleSettings) -> None:
    if robot is None:
        st.info("No robot to show.")
        return
    who = session.identity()
    description = robot.get("description") or {}
    st.subheader(f"Live: {robot['id']}" + (f" ({description.get('name')})" if description.get("name") else ""))
    if who.can("live"):
        embed_html(
            live_view_html(settings.browser_api_url, robot["id"], session.token(), fps=settings.live_fps),
            height=LIVE_HEIGHT,
        )
    else:
        st.info(f"Role `{who.role}` may not watch the live stream; task controls below still work.")
    start_col, active_col, coach_col = st.columns([1, 1.3, 1])
    with start_col:
        if who.can("tasks:write"):
            start_task_form(robot)
    with active_col:
        active_task_panel(robot["id"])
    with coach_col:
        if who.can("coaching"):
            coaching_form(robot["id"], settings)
