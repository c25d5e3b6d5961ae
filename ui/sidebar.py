"""The sidebar, drawn on every page: who is logged in, which robot, and the always-visible e-stop.

The e-stop panel is a fragment that refreshes itself every second, so its latched state is current on every page
without rerunning the page, and pressing it reruns only the fragment (one REST call, no page work in the way).
"""

from __future__ import annotations

import streamlit as st

from ui import session
from ui.api_client import ApiError, ApiUnreachable
from ui.compat import FULL_WIDTH
from ui.session import Need, may
from ui.views.models import RobotInfo, StatusView

ESTOP_CSS = """
<style>
.st-key-estop button { background:#c8102e !important; color:white !important; border:3px solid #7a0010 !important;
  min-height:4.2rem; font-size:1.5rem !important; font-weight:800 !important; letter-spacing:.05em; }
.st-key-estop button p { font-size:1.5rem !important; font-weight:800 !important; }
.estop-latched { background:#c8102e; color:white; font-weight:800; text-align:center; padding:.5rem; border-radius:.5rem; }
.estop-clear { background:#1f5135; color:white; text-align:center; padding:.35rem; border-radius:.5rem; }
</style>
"""


def robot_picker(robots: list[RobotInfo]) -> RobotInfo | None:
    if not robots:
        st.sidebar.warning("The API serves no robots.")
        return None
    ids = [r.id for r in robots]
    current = st.session_state.get("robot_id")
    index = ids.index(current) if current in ids else 0
    chosen = st.sidebar.selectbox(
        "Robot",
        ids,
        index=index,
        key="robot_select",
        format_func=lambda robot_id: next(r.title for r in robots if r.id == robot_id),
    )
    st.session_state["robot_id"] = chosen
    return next(r for r in robots if r.id == chosen)


@st.fragment(run_every=1.0)
def estop_panel(robot_id: str) -> None:
    api = session.client()
    status_box = st.container()
    message = None
    if may(Need.ESTOP) and st.button("E-STOP", key="estop", type="primary", **FULL_WIDTH):
        try:
            api.estop(robot_id, reason="operator console e-stop")
        except (ApiError, ApiUnreachable) as exc:
            message = f"E-stop request failed: {exc}"

    try:
        status = StatusView.model_validate(api.robot_status(robot_id))
    except ApiUnreachable as exc:
        status_box.error(f"API unreachable: {exc}")
        return
    except ApiError as exc:
        status_box.error(f"status unavailable: {exc.message}")
        return
    if may(Need.ESTOP):
        st.caption("Stops the robot at once; it holds still until the e-stop is reset.")
    with status_box:
        if message:
            st.error(message)
        if status.estopped:
            st.markdown(
                '<div class="estop-latched" data-testid="estop-latched">E-STOP LATCHED</div>', unsafe_allow_html=True
            )
            if may(Need.ESTOP_RESET) and st.button("Reset e-stop", key="estop_reset", **FULL_WIDTH):
                try:
                    api.reset_estop(robot_id)
                except (ApiError, ApiUnreachable) as exc:
                    st.error(f"Reset failed: {exc}")
                st.rerun(scope="fragment")
        else:
            st.markdown('<div class="estop-clear" data-testid="estop-clear">e-stop clear</div>', unsafe_allow_html=True)


def draw_sidebar(robots: list[RobotInfo]) -> RobotInfo | None:
    who = session.identity()
    st.markdown(ESTOP_CSS, unsafe_allow_html=True)
    st.sidebar.markdown(f"**{who.name}** · role `{who.role}`")
    robot = robot_picker(robots)
    if robot is not None:
        with st.sidebar:
            estop_panel(robot.id)
    if st.sidebar.button("Log out", key="logout"):
        session.logout()
        st.rerun()
    return robot
