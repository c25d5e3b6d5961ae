"""`POST /live/tickets`: a single-use ticket for the live WebSocket (why: agent/api/live_tickets.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent.api.auth import Permission, require
from agent.api.context import ApiContext, get_ctx
from agent.api.schemas import LiveTicket
from agent.store import TokenInfo

router = APIRouter(tags=["live"])


@router.post(
    "/live/tickets",
    response_model=LiveTicket,
    status_code=201,
    summary="A single-use ticket for the live WebSocket (so the bearer token stays out of URLs)",
    description="Connect within `expires_in_s` to `/api/v1/robots/{robot_id}/live?ticket=…`. The socket's "
    "messages are the `Live*` components of this document (first `LiveHello`, then `LiveEventMessage` whose "
    "`data` is the payload model of its `kind`, `LiveFrame`, and `LiveAck`/`LivePong`/`LiveError` answers).",
)
def create_ticket(
    ctx: ApiContext = Depends(get_ctx), token: TokenInfo = Depends(require(Permission.LIVE))
) -> LiveTicket:
    return LiveTicket(ticket=ctx.tickets.issue(token), expires_in_s=ctx.tickets.ttl_s)
