"""Every 4xx answer is `{"code": <machine-readable>, "message": <for a person>}`, whatever raised it.

Clients (the console, Home Assistant, scripts) branch on `code`, never on message wording. Handlers here cover
our own ApiError, Starlette's HTTP errors (unknown route, wrong method), FastAPI validation errors and bodies
that are not JSON at all.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ApiError(Exception):
    """Raise from any handler to answer `status` with a coded JSON error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def not_found(kind: str, ident: object) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"no {kind.replace('_', ' ')} {ident!r}")


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}

# Shown in the OpenAPI document for every route, so generated clients know the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": code.replace("_", " ")}
    for status, code in _STATUS_CODES.items()
    if status in (400, 401, 403, 404, 409, 422, 429)
}


def _body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return body


def _plain_details(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors as JSON-safe dicts (pydantic puts exception objects in `ctx`)."""
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error" if exc.status_code >= 500 else "client_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return JSONResponse(_body(code, message), status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return JSONResponse(_body("malformed_json", "request body is not valid JSON"), status_code=400)
    details = _plain_details(errors)
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p not in ("body",)) or "request"
    message = f"{where}: {first['msg']}"
    return JSONResponse(_body("validation_error", message, details), status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", extra={"path": request.url.path}, exc_info=exc)
    return JSONResponse(_body("internal_error", "internal error; see the API log"), status_code=500)


MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    """Refuse declared bodies over MAX_BODY_BYTES with 413 before reading them (requests here are small JSON)."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                response = JSONResponse(
                    _body("payload_too_large", f"request body over {self.max_bytes} bytes"), status_code=413
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(BodySizeLimit)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
