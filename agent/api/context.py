"""Everything a request handler needs, built once per app and reached through `request.app.state.ctx`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from agent.api.live_tickets import TicketBook
from agent.api.ratelimit import RateLimiter
from agent.api.registry import RuntimeRegistry
from agent.api.webhooks import WebhookDispatcher
from agent.settings import ApiConfig
from agent.store import Store


@dataclass
class ApiContext:
    config: ApiConfig
    store: Store
    registry: RuntimeRegistry
    webhooks: WebhookDispatcher
    task_limiter: RateLimiter
    bus: Any = None
    bridge: Any = None
    hub: Any = None
    tickets: TicketBook = field(default_factory=TicketBook)


async def get_ctx(request: Request) -> ApiContext:
    """Async on purpose: a sync dependency costs a threadpool hop per request for a plain attribute read."""
    return request.app.state.ctx
