"""Opening a client connection to either server: the policy worker (policy/client.py) or a robot bridge (robots/bridge.py)."""

from __future__ import annotations

from typing import Any

from websockets.sync.client import ClientConnection, connect


def open_connection(url: str, api_key: str | None, open_timeout_s: float, **options: Any) -> ClientConnection:
    """Connect with `Authorization: Api-Key <key>` (none without a key), no compression and no size limit.

    Frames are already-compact msgpack (compression would cost CPU per chunk for nothing), and the sender's own limit
    is the one that protects anybody. Handshake errors propagate as websockets raises them, so each caller can word
    them for its own peer. `options` go to `websockets.sync.client.connect` (keepalive pings, for example).
    """
    headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
    return connect(
        url, compression=None, max_size=None, additional_headers=headers, open_timeout=open_timeout_s,
        close_timeout=1.0, **options,
    )  # fmt: skip
