"""Episode review: filter recorded episodes, play one back with everything aligned, label it, export it.

The player runs in the browser (ui/static/episode_player.html): synchronized camera videos, a scrubber, the
subtask timeline with coaching and e-stop events on it, and action/state plots whose cursor follows the time.
"""

from __future__ import annotations

import datetime as dt
import shlex
from typing import Any

import streamlit as st

from ui import session
from ui.api_client import ApiError, ApiUnreachable
from ui.compat import FULL_WIDTH, embed_html
from ui.components import episode_player_html
from ui.session import Need, may
from ui.settings import ConsoleSettings
from ui.views.models import RobotInfo

OUTCOMES = ["succeeded", "failed", "aborted", "stopped-by-e-stop", "interrupted"]
PLAYER_HEIGHT = 740


def _filters(robots: list[RobotInfo]) -> dict[str, Any]:
    cols = st.columns([1, 2, 1, 1])
    robot = cols[0].selectbox("Robot", ["(all)", *[r.id for r in robots]], key="ep_robot")
    task = cols[1].text_input("Task contains", key="ep_task")
    outcome = cols[2].selectbox("Outcome", ["(any)", *OUTCOMES], key="ep_outcome")
    since = cols[3].date_input("Since", value=None, key="ep_since")
    return {
        "robot_id": None if robot == "(all)" else robot,
        "task": task.strip() or None,
        "outcome": None if outcome == "(any)" else outcome,
        "since": dt.datetime.combine(since, dt.time()).timestamp() if since else None,
    }


def _label(episode: dict[str, Any]) -> str:
    when = dt.datetime.fromtimestamp(episode["recorded_at"]).strftime("%Y-%m-%d %H:%M")
    return (
        f"{episode['robot_id']} #{episode['episode_index']} · {episode.get('task') or '?'} · "
        f"{episode.get('outcome') or 'unlabeled'} · {episode.get('length') or '?'} frames · {when}"
    )


@st.cache_data(ttl=600, show_spinner="Loading episode…", max_entries=8)
def _load_player(robot_id: str, index: int, cameras: tuple[str, ...], length: int | None) -> str:
    """Fetch everything the player needs and build its HTML.

    Cached per episode for every session: a finished episode's videos and numbers never change, and only
    sessions whose token may read episodes reach this page.
    """
    api = session.client()
    episode = api.episode(robot_id, index)
    timeline = api.timeline(robot_id, index)
    try:
        data = api.episode_data(robot_id, index)
    except ApiError:
        data = {}
    videos = {}
    for camera in cameras:
        try:
            videos[camera] = api.episode_video(robot_id, index, camera)
        except ApiError:
            continue
    return episode_player_html(episode, timeline, data, videos)


def _label_editor(episode: dict[str, Any]) -> None:
    with st.form(f"label_{episode['robot_id']}_{episode['episode_index']}", border=True):
        st.markdown("**Outcome label**")
        current = episode.get("outcome")
        options = OUTCOMES if current in OUTCOMES or current is None else [current, *OUTCOMES]
        outcome = st.selectbox(
            "Outcome", options, index=options.index(current) if current in options else 0, key="label_outcome"
        )
        success_choice = {"unknown": None, "yes": True, "no": False}
        default = {None: "unknown", True: "yes", False: "no"}[episode.get("success")]
        success = st.radio(
            "Task achieved?",
            list(success_choice),
            index=list(success_choice).index(default),
            horizontal=True,
            key="label_success",
        )
        if st.form_submit_button("Save label"):
            try:
                session.client().label_episode(
                    episode["robot_id"], episode["episode_index"], outcome, success_choice[success]
                )
            except (ApiError, ApiUnreachable) as exc:
                st.error(f"Label not saved: {exc}")
            else:
                st.success(f"Label saved: {outcome}")
                st.rerun()


def _rerun_export(episode: dict[str, Any]) -> None:
    robot_id, index = episode["robot_id"], episode["episode_index"]
    st.markdown("**Deep review in Rerun**")
    key = f"rrd_{robot_id}_{index}"
    if st.button("Export to Rerun", key=f"export_{key}"):
        try:
            st.session_state[key] = session.client().export_rerun(robot_id, index)
        except ApiError as exc:
            st.session_state[key] = None
            st.warning(f"The API could not export it ({exc.message}); use the command below on the API host.")
        except ApiUnreachable as exc:
            st.error(f"API unreachable: {exc}")
    if st.session_state.get(key):
        st.download_button(
            "Download .rrd",
            st.session_state[key],
            file_name=f"{robot_id}-episode{index}.rrd",
            mime="application/octet-stream",
            key=f"download_{key}",
        )
    root = shlex.quote(str(episode.get("root", "runs/episodes/" + robot_id)))
    out = f"{robot_id}-episode{index}.rrd"
    st.code(f"hearth episodes export-rerun {index} --root {root} --out {out} && rerun {out}", language="bash")


def render(robots: list[RobotInfo], settings: ConsoleSettings) -> None:
    st.subheader("Episodes")
    api = session.client()
    filters = _filters(robots)
    try:
        episodes = api.episodes(**filters)
    except ApiUnreachable as exc:
        st.error(f"API unreachable: {exc}")
        return
    except ApiError as exc:
        st.error(f"Cannot list episodes: {exc.message}")
        return
    if not episodes:
        st.info("No recorded episodes match these filters.")
        return
    st.dataframe(
        [
            {
                "robot": e["robot_id"],
                "episode": e["episode_index"],
                "task": e.get("task"),
                "outcome": e.get("outcome"),
                "success": e.get("success"),
                "frames": e.get("length"),
                "recorded": dt.datetime.fromtimestamp(e["recorded_at"]).strftime("%Y-%m-%d %H:%M:%S"),
            }
            for e in episodes
        ],
        hide_index=True,
        **FULL_WIDTH,
    )
    labels = [_label(e) for e in episodes]
    chosen = st.selectbox("Open episode", labels, key="ep_open")
    episode = episodes[labels.index(chosen)]
    robot = next((r for r in robots if r.id == episode["robot_id"]), None)
    cameras = tuple(robot.camera_names) if robot and robot.camera_names else ("head", "wrist")
    try:
        html = _load_player(episode["robot_id"], episode["episode_index"], cameras, episode.get("length"))
    except (ApiError, ApiUnreachable) as exc:
        st.error(f"Cannot open episode: {exc}")
        return
    player_col, side_col = st.columns([3, 1])
    with player_col:
        embed_html(html, height=PLAYER_HEIGHT)
    with side_col:
        st.markdown(
            f"**{episode.get('task')}**  \noutcome: **{episode.get('outcome') or 'unlabeled'}** · "
            f"success: {episode.get('success')}"
        )
        if may(Need.EPISODES_LABEL):
            _label_editor(episode)
        _rerun_export(episode)
