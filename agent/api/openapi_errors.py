"""The OpenAPI document lists, for every operation, the error statuses the API can answer it with.

FastAPI documents only what a route declares, so the document said 200/201/401/422 while the API also answers
400 (malformed JSON), 403 (role), 404 (unknown id), 409 (state conflicts), 413 (body too large) and 429 (rate
limit, full queue). Generated clients and conformance checkers (schemathesis' status-code conformance) trust
the document, so the statuses are derived here from what produces them, once, for every route:

- 413: `BodySizeLimit` (agent/api/errors.py) refuses any request declaring a body over the limit;
- 400 + 422: a JSON body (malformed -> 400 `malformed_json`, invalid -> 422); 422 also for any parameter;
- 401 + 403: a route behind a token (`require(...)` in agent/api/auth.py adds the bearer security scheme);
  a route without one (health) does not answer 401;
- 404: a path parameter naming a robot, task, episode, camera or token;
- 409: commands on existing things (any non-GET route: invalid transition, task finished, robot busy) and reads
  of a recorded episode whose files are unreadable;
- 404 + 429: task creation (the body names a robot; per-token rate limit, full robot queue).

Every error body is `ErrorBody` (`{"code", "message", "details"?}`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from agent.api.errors import ErrorBody

DESCRIPTIONS = {
    400: "malformed_json: the body is not JSON",
    401: "unauthorized: missing, unknown or revoked token",
    403: "forbidden: the token's role may not do this",
    404: "not found: no such robot, task, episode, camera or token",
    409: "conflict: the thing is not in a state that allows this (task finished, robot busy, episode unreadable)",
    413: "payload_too_large: request body over the API's limit",
    422: "validation_error (or a specific code such as task_text_empty): the request is well-formed but invalid",
    429: "rate_limited (Retry-After) or queue_full",
}
TASK_CREATION = ("post", "/api/v1/tasks")


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses one operation can answer with (see the module docstring for where each comes from)."""
    parameters = operation.get("parameters", [])
    statuses = {413}
    if operation.get("requestBody"):
        statuses |= {400, 422}
    if parameters:
        statuses.add(422)
    if operation.get("security"):
        statuses |= {401, 403}
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
        if method != "get" or path.startswith("/api/v1/episodes/"):
            statuses.add(409)
    if method != "get" and operation.get("security") and (method, path) != ("post", "/api/v1/tokens"):
        statuses.add(409)
    if (method, path) == TASK_CREATION:
        statuses |= {404, 409, 429}  # the body names a robot
    return statuses


def document_error_responses(app: FastAPI) -> None:
    """Make `app.openapi()` add the derived error responses to every operation (the schema is built once)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
        error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                statuses = error_statuses(method, path, operation)
                responses = operation.setdefault("responses", {})
                if not operation.get("security"):
                    responses.pop("401", None)
                for status in sorted(statuses):
                    responses.setdefault(str(status), {"description": DESCRIPTIONS[status], "content": error_content})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
