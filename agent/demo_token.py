"""The demo's operator token: one per deployment home, reused across `make demo` runs.

The store keeps only a token's hash, so the secret is kept in `<home>/demo-token` (mode 0600, next to the
database it unlocks) and reused while the store still accepts it. Before this every `make demo` minted another
never-expiring "demo" token; `ensure_demo_token` also revokes any other active token named "demo" with the
operator role, so at most one exists however many times the demo was started.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

DEMO_TOKEN_NAME = "demo"
DEMO_TOKEN_ROLE = "operator"


class TokenInfoLike(Protocol):
    id: str
    name: str
    role: str


class TokenStore(Protocol):
    """The part of agent.store.Store this needs."""

    def create_token(self, name: str, role: str) -> tuple[TokenInfoLike, str]: ...

    def verify_token(self, secret: str) -> TokenInfoLike | None: ...

    def list_tokens(self, include_revoked: bool = True) -> list[TokenInfoLike]: ...

    def revoke_token(self, token_id: str) -> TokenInfoLike: ...


def ensure_demo_token(store: TokenStore, secret_file: Path) -> tuple[str, bool]:
    """The demo operator token's secret and whether it was created now (False: reused from `secret_file`)."""
    secret = secret_file.read_text().strip() if secret_file.exists() else ""
    info = store.verify_token(secret) if secret else None
    created = info is None or info.role != DEMO_TOKEN_ROLE or info.name != DEMO_TOKEN_NAME
    if created:
        info, secret = store.create_token(DEMO_TOKEN_NAME, DEMO_TOKEN_ROLE)
        _write_private(secret_file, secret)
    for other in store.list_tokens(include_revoked=False):
        if other.name == DEMO_TOKEN_NAME and other.role == DEMO_TOKEN_ROLE and other.id != info.id:
            store.revoke_token(other.id)
    return secret, created


def _write_private(path: Path, text: str) -> None:
    """Create the file readable by its owner only, before any secret is written to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)
