"""Login with an API token and the per-browser-session state (client, identity, chosen robot).

The token's permissions as the API lists them (GET /api/v1/tokens/me `permissions`) decide which controls the
pages draw; a response without the list shows no controls. The API enforces the same permissions again, so a
hidden button is convenience, never the security boundary.
"""

from __future__ import annotations

from enum import StrEnum

import streamlit as st

from ui.api_client import ApiClient, ApiError, ApiUnreachable, Identity
from ui.settings import ConsoleSettings

TOKEN_KEY, IDENTITY_KEY, CLIENT_KEY = "hearth_token", "hearth_identity", "hearth_client"


class Need(StrEnum):
    """The API permission each console control needs, by the name the API lists it under (one place: a test checks
    every name against the API's own list)."""

    LIVE = "live"
    TASKS_WRITE = "tasks:write"
    COACHING = "coaching"
    ESTOP = "estop"
    ESTOP_RESET = "estop:reset"
    EPISODES_READ = "episodes:read"
    EPISODES_LABEL = "episodes:label"


def may(need: Need) -> bool:
    """Whether the logged-in token may use the control that needs `need` (from the API's permission list)."""
    return identity().can(need.value)


def client() -> ApiClient:
    return st.session_state[CLIENT_KEY]


def identity() -> Identity:
    return st.session_state[IDENTITY_KEY]


def logout() -> None:
    existing = st.session_state.pop(CLIENT_KEY, None)
    if existing is not None:
        existing.close()
    for key in (TOKEN_KEY, IDENTITY_KEY, "robot_id"):
        st.session_state.pop(key, None)


def unreachable_message(settings: ConsoleSettings, exc: Exception) -> str:
    return (
        f"**The hearth API is not reachable at {settings.api_url}.** Start it with `hearth serve-api` "
        f"(or check `hearth console --api-url`). Details: {exc}"
    )


def try_login(settings: ConsoleSettings, secret: str) -> str | None:
    """Log in with `secret`; None on success, else a message for the operator."""
    secret = secret.strip()
    if not secret:
        return "Enter an API token (create one with `hearth tokens create --role operator`)."
    api = ApiClient(settings.api_url, secret)
    try:
        who = api.whoami()
    except ApiUnreachable as exc:
        api.close()
        return unreachable_message(settings, exc)
    except ApiError as exc:
        api.close()
        if exc.status == 401:
            return "That token was not accepted (unknown or revoked)."
        return f"Login failed: {exc.message} ({exc.code})."
    st.session_state[TOKEN_KEY] = secret
    st.session_state[IDENTITY_KEY] = who
    st.session_state[CLIENT_KEY] = api
    return None


def login_page(settings: ConsoleSettings) -> None:
    """Draw the login form; returns after a successful login has triggered a rerun."""
    st.title("hearth operator console")
    health_box = st.container()
    with st.form("login", border=True):
        secret = st.text_input(
            "API token",
            type="password",
            value=settings.prefilled_token or "",
            key="login_token",
            help="From `hearth tokens create --role operator` (viewer tokens see everything but change nothing).",
        )
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        problem = try_login(settings, secret)
        if problem is None:
            st.rerun()
        st.error(problem)
    with health_box:
        try:
            with ApiClient(settings.api_url, timeout_s=3.0) as probe:
                health = probe.health()
            robots = ", ".join(health.get("robots", {})) or "none"
            st.caption(f"API {settings.api_url}: {health.get('status')} · robots: {robots}")
        except (ApiUnreachable, ApiError) as exc:
            st.error(unreachable_message(settings, exc))
