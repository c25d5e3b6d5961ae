"""Bearer tokens with roles.

Roles and what they may do (checked per route through `require(Permission.X)`):
- viewer:     read robots, tasks, episodes, the live stream.
- operator:   viewer + create/pause/resume/abort tasks, coaching, e-stop and e-stop reset, episode outcome labels.
- automation: robots and tasks (read + create/pause/resume/abort) and e-stop; nothing else (home automation).
- admin:      everything, including tokens and deleting episodes.
E-stop is granted to every role except viewer: whoever can make the robot move can make it stop.
Tokens come as `Authorization: Bearer <token>`. Browsers cannot set headers on a WebSocket, so the live socket
takes a single-use ticket (`POST /api/v1/live/tickets`) instead; a token in a URL is never accepted.
Clients learn what a token may do from `GET /api/v1/tokens/me` (`permissions_of`), never from a copy of this table.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.api.errors import ApiError
from agent.store import Store, TokenInfo


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    AUTOMATION = "automation"
    ADMIN = "admin"


class Permission(StrEnum):
    ROBOTS_READ = "robots:read"
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    COACHING = "coaching"
    ESTOP = "estop"
    ESTOP_RESET = "estop:reset"
    EPISODES_READ = "episodes:read"
    EPISODES_DELETE = "episodes:delete"
    EPISODES_LABEL = "episodes:label"
    LIVE = "live"
    TOKENS = "tokens"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.ROBOTS_READ, Permission.TASKS_READ, Permission.EPISODES_READ, Permission.LIVE}),
    Role.OPERATOR: frozenset(
        {
            Permission.ROBOTS_READ,
            Permission.TASKS_READ,
            Permission.TASKS_WRITE,
            Permission.COACHING,
            Permission.ESTOP,
            Permission.ESTOP_RESET,
            Permission.EPISODES_READ,
            Permission.EPISODES_LABEL,
            Permission.LIVE,
        }
    ),
    Role.AUTOMATION: frozenset(
        {Permission.ROBOTS_READ, Permission.TASKS_READ, Permission.TASKS_WRITE, Permission.ESTOP}
    ),
    Role.ADMIN: frozenset(Permission),
}


def permissions_of(role: str) -> list[str]:
    """The permission values a role grants, sorted (what `GET /tokens/me` tells clients; none for unknown roles)."""
    try:
        return sorted(p.value for p in ROLE_PERMISSIONS[Role(role)])
    except ValueError:
        return []


def allowed(role: str, permission: Permission) -> bool:
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


_bearer = HTTPBearer(auto_error=False, description="An API token from `hearth tokens create --role …`.")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def authenticate(store: Store, secret: str | None) -> TokenInfo:
    """The token for this secret or a 401 ApiError (missing, unknown and revoked all look the same)."""
    if not secret:
        raise ApiError(
            401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)", UNAUTHORIZED_HEADERS
        )
    token = store.verify_token(secret.strip())
    if token is None:
        raise ApiError(401, "unauthorized", "invalid or revoked token", UNAUTHORIZED_HEADERS)
    return token


def authorize(token: TokenInfo, permission: Permission) -> None:
    if not allowed(token.role, permission):
        raise ApiError(403, "forbidden", f"role {token.role!r} may not {permission.value}")


def require(permission: Permission) -> Callable[..., TokenInfo]:
    """A FastAPI dependency: the caller's token, after checking it grants `permission`."""

    def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> TokenInfo:
        store: Store = request.app.state.ctx.store
        if credentials is None and request.headers.get("authorization"):
            raise ApiError(401, "unauthorized", "Authorization header must be 'Bearer <token>'", UNAUTHORIZED_HEADERS)
        token = authenticate(store, credentials.credentials if credentials else None)
        authorize(token, permission)
        return token

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency
