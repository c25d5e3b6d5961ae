"""Short-lived, single-use tickets that open the live WebSocket, so a bearer token never sits in a URL.

Why: browsers cannot set headers on a WebSocket, so the console used to put its token in the query string, where
proxies and access logs keep it. Now it asks `POST /api/v1/live/tickets` (agent/api/routers/tickets.py: bearer
auth, the live permission) and connects with `?ticket=…`: a random secret (`secrets.token_urlsafe`) that carries
the token's identity and role, opens one socket, and is worthless after `TICKET_TTL_S` seconds or its first use,
whichever comes first.

Tickets live in the memory of the API process that issued them: with several API processes behind one address,
the socket must reach the process that issued its ticket (sticky routing) or the ticket is unknown there.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.store import TokenInfo

TICKET_TTL_S = 30.0
#: Expired and used tickets are remembered this long past their expiry, so a late client hears why it was refused.
REMEMBER_S = 300.0
#: Outstanding tickets kept at most (oldest forgotten first): a token minting tickets in a loop costs bounded memory.
MAX_TICKETS = 10_000


class TicketRefused(Exception):
    """The ticket cannot open a socket; `code` says why (ticket_unknown, ticket_used, ticket_expired)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Ticket:
    token: TokenInfo
    expires_at: float
    used: bool = False


class TicketBook:
    """Issues and redeems tickets (thread-safe; `clock` is injectable so tests need not wait 30 s)."""

    def __init__(self, ttl_s: float = TICKET_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._tickets: collections.OrderedDict[str, _Ticket] = collections.OrderedDict()
        self._lock = threading.Lock()

    def issue(self, token: TokenInfo) -> str:
        """A new ticket for `token`, valid for `ttl_s` seconds and one socket."""
        ticket = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_old(self._clock())
            self._tickets[ticket] = _Ticket(token, self._clock() + self.ttl_s)
            while len(self._tickets) > MAX_TICKETS:
                self._tickets.popitem(last=False)
        return ticket

    def redeem(self, ticket: str) -> TokenInfo:
        """The identity the ticket carries, once; TicketRefused when unknown, already used or expired."""
        with self._lock:
            entry = self._tickets.get(ticket)
            if entry is None:
                raise TicketRefused("ticket_unknown", "unknown ticket; ask POST /api/v1/live/tickets for a new one")
            if entry.used:
                raise TicketRefused("ticket_used", "this ticket was already used; a ticket opens one socket")
            if self._clock() >= entry.expires_at:
                raise TicketRefused("ticket_expired", f"this ticket expired (tickets last {self.ttl_s:g} s)")
            entry.used = True
            return entry.token

    def _forget_old(self, now: float) -> None:
        stale = [key for key, entry in self._tickets.items() if now >= entry.expires_at + REMEMBER_S]
        for key in stale:
            del self._tickets[key]
