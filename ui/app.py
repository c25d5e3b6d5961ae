"""The operator console (Streamlit entry point): login, then the live page and episode review.

Started by `hearth console`, which sets the API URL in the environment (see ui/settings.py). Everything the
console knows comes from the hearth API over HTTP and the live WebSocket; it imports nothing from `agent`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `streamlit run ui/app.py` puts ui/ (not the repo root) on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

from ui import session
from ui.api_client import ApiError, ApiUnreachable
from ui.session import Need
from ui.settings import ConsoleSettings
from ui.sidebar import draw_sidebar
from ui.views import episodes as episodes_page
from ui.views import live as live_page
from ui.views.models import RobotInfo


def main() -> None:
    st.set_page_config(page_title="hearth console", layout="wide")
    settings = ConsoleSettings.from_env()
    if session.IDENTITY_KEY not in st.session_state:
        session.login_page(settings)
        return
    api = session.client()
    try:
        robots = [RobotInfo.parse(body) for body in api.robots()]
    except ApiUnreachable as exc:
        st.error(session.unreachable_message(settings, exc))
        if st.button("Retry"):
            st.rerun()
        if st.button("Log out"):
            session.logout()
            st.rerun()
        return
    except ApiError as exc:
        if exc.status == 401:
            session.logout()
            st.warning("Your token is no longer valid; log in again.")
            st.rerun()
        st.error(f"The API refused to list robots: {exc.message}")
        return
    robot = draw_sidebar(robots)
    pages = [st.Page(lambda: live_page.render(robot, settings), title="Live", url_path="live", default=True)]
    if session.may(Need.EPISODES_READ):
        pages.append(st.Page(lambda: episodes_page.render(robots, settings), title="Episodes", url_path="episodes"))
    st.navigation(pages).run()


main()
