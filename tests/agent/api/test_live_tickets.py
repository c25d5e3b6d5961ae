"""Live WebSocket tickets: issued to roles with the live permission, open one socket within 30 s, carry the token's
role; reused, expired, unknown and revoked tickets are refused with 4401 and a code saying which."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agent.api.auth import ROLE_PERMISSIONS, Permission
from agent.api.live_tickets import REMEMBER_S, TicketBook, TicketRefused
from agent.store import TokenInfo
from tests.agent.api.conftest import ROBOT_ID, api_stack

pytestmark = pytest.mark.slow

TOKEN = TokenInfo(id="t1", name="console", role="operator", prefix="abc", created_at=0.0)


@pytest.fixture(scope="module")
def stack(sim_robot, worker_url, tmp_path_factory):
    """The runtime is not started: a socket's hello, auth and coaching refusals need no control loop."""
    with api_stack(sim_robot, worker_url, tmp_path_factory.mktemp("tickets"), start=False, record=False) as stack:
        yield stack


def ticket_for(stack, role: str) -> str:
    response = stack.clients[role].post("/api/v1/live/tickets")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["expires_in_s"] == 30 and len(body["ticket"]) >= 32
    return body["ticket"]


def live_url(stack, ticket: str) -> str:
    return f"{stack.server.ws_url}/api/v1/robots/{ROBOT_ID}/live?ticket={ticket}&fps=0"


def refusal(stack, ticket: str) -> tuple[dict, int, str]:
    """The error message, close code and close reason a socket opened with this ticket gets."""
    with connect(live_url(stack, ticket), open_timeout=10) as ws:
        error = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    return error, closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_ticket_opens_one_socket_with_its_tokens_role(stack):
    ticket = ticket_for(stack, "viewer")
    with connect(live_url(stack, ticket), open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["role"] == "viewer"
        ws.send(json.dumps({"type": "coach", "task_id": "x", "utterance": "pick up the can"}))
        assert json.loads(ws.recv(timeout=10))["code"] == "forbidden"  # a viewer's ticket coaches no more than it
    error, code, reason = refusal(stack, ticket)
    assert (error["type"], error["code"], code, reason) == ("error", "ticket_used", 4401, "ticket_used")


def test_an_operator_ticket_carries_the_operator_role(stack):
    with connect(live_url(stack, ticket_for(stack, "operator")), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["role"] == "operator"


def test_expired_and_unknown_tickets_are_refused(stack):
    ctx = stack.app.state.ctx
    now = [0.0]
    book, ctx.tickets = ctx.tickets, TicketBook(clock=lambda: now[0])
    try:
        ticket = ticket_for(stack, "operator")
        now[0] = 30.0
        error, code, reason = refusal(stack, ticket)
        assert (error["code"], code, reason) == ("ticket_expired", 4401, "ticket_expired")
        assert "30 s" in error["message"]
    finally:
        ctx.tickets = book
    error, code, _reason = refusal(stack, "not-a-ticket")
    assert (error["code"], code) == ("ticket_unknown", 4401)


def test_roles_without_the_live_permission_get_no_ticket(stack):
    without_live = [role.value for role, granted in ROLE_PERMISSIONS.items() if Permission.LIVE not in granted]
    assert without_live == ["automation"]
    response = stack.clients["automation"].post("/api/v1/live/tickets")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert stack.clients[None].post("/api/v1/live/tickets").status_code == 401


def test_a_ticket_of_a_token_revoked_since_is_refused(stack):
    info, secret = stack.store.create_token("short-lived", "viewer")
    response = stack.clients["admin"].post("/api/v1/live/tickets", headers={"Authorization": f"Bearer {secret}"})
    ticket = response.json()["ticket"]
    stack.store.revoke_token(info.id)
    error, code, _reason = refusal(stack, ticket)
    assert (error["code"], code) == ("unauthorized", 4401)


def test_ticket_book_is_single_use_expires_and_forgets_old_tickets():
    now = [100.0]
    book = TicketBook(ttl_s=30.0, clock=lambda: now[0])
    first, second = book.issue(TOKEN), book.issue(TOKEN)
    assert first != second
    assert book.redeem(first) == TOKEN
    with pytest.raises(TicketRefused) as used:
        book.redeem(first)
    assert used.value.code == "ticket_used"
    now[0] = 129.9
    assert book.redeem(second) == TOKEN  # still inside its 30 s
    late = book.issue(TOKEN)
    now[0] += 30.0
    with pytest.raises(TicketRefused) as expired:
        book.redeem(late)
    assert expired.value.code == "ticket_expired"
    now[0] += REMEMBER_S
    book.issue(TOKEN)  # issuing forgets tickets long past their expiry
    with pytest.raises(TicketRefused) as forgotten:
        book.redeem(late)
    assert forgotten.value.code == "ticket_unknown"
