"""HTTP client for the hearth API, used by the console's Streamlit pages.

Why a module of its own: the console must never import agent internals, so everything it knows about robots,
tasks and episodes comes through these calls. Errors are turned into two exception types the pages can show
plainly: `ApiUnreachable` (nothing answered: wrong URL, API down, timeout) and `ApiError` (the API answered
with a coded 4xx/5xx body `{"code", "message"}`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT_S = 10.0


class ApiUnreachable(RuntimeError):
    """Nothing answered at the API URL (connection refused, DNS failure, timeout)."""


class ApiError(RuntimeError):
    """The API answered with an error status; `code` is machine-readable, `message` is for a person."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to and what it may do (from GET /api/v1/tokens/me)."""

    id: str
    name: str
    role: str
    permissions: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


def normalize_base_url(url: str) -> str:
    """Accept `host:port`, `http://host:port`, or a URL ending in /api/v1; return `scheme://host:port`."""
    url = url.strip()
    if not url:
        raise ValueError("the API URL is empty")
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def live_ws_url(base_url: str, robot_id: str, *, ticket: str, **params: Any) -> str:
    """The browser-side WebSocket URL of a robot's live stream, opened with a `ticket` (`ApiClient.live_ticket()`:
    single use, 30 s). Why not the bearer token: a URL's query string ends up in access logs, so the API takes
    tokens only in the Authorization header, which a browser's WebSocket cannot set."""
    if not ticket:
        raise ValueError("live_ws_url needs a ticket (ApiClient.live_ticket())")
    parts = urlsplit(normalize_base_url(base_url))
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urlencode({"ticket": ticket, **{k: v for k, v in params.items() if v is not None}})
    path = f"{parts.path}{API_PREFIX}/robots/{quote(robot_id, safe='')}/live"
    return urlunsplit((scheme, parts.netloc, path, query, ""))


class ApiClient:
    """A thin synchronous client: one method per endpoint the console uses; JSON in, JSON out."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.base_url = normalize_base_url(base_url)
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url + API_PREFIX, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
            raise ApiUnreachable(
                f"the hearth API at {self.base_url} is not reachable: {type(exc).__name__}: {exc}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiUnreachable(f"request to {self.base_url}{API_PREFIX}{path} failed: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code, "not_json", f"{path} did not answer JSON; is {self.base_url} a hearth API?"
            ) from exc

    # ------------------------------------------------------------------ identity and health
    def health(self) -> dict[str, Any]:
        """GET /health (no token needed). A 503 'degraded' body is returned, not raised."""
        try:
            return self._json("GET", "/health")
        except ApiError as exc:
            if exc.status == 503:
                return {"status": "degraded", "detail": exc.message}
            raise

    def whoami(self) -> Identity:
        data = self._json("GET", "/tokens/me")
        return Identity(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            role=str(data["role"]),
            permissions=frozenset(data.get("permissions", [])),
        )

    def live_ticket(self) -> str:
        """A single-use ticket (valid 30 s) that opens one live WebSocket, so the token stays out of its URL."""
        return str(self._json("POST", "/live/tickets")["ticket"])

    # ------------------------------------------------------------------ robots
    def robots(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/robots")["items"])

    def robot(self, robot_id: str) -> dict[str, Any]:
        return self._json("GET", f"/robots/{_seg(robot_id)}")

    def robot_status(self, robot_id: str) -> dict[str, Any]:
        return self._json("GET", f"/robots/{_seg(robot_id)}/status")

    def queue(self, robot_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/robots/{_seg(robot_id)}/queue")["items"])

    def estop(self, robot_id: str, reason: str = "operator console") -> dict[str, Any]:
        return self._json("POST", f"/robots/{_seg(robot_id)}/estop", json={"reason": reason})

    def reset_estop(self, robot_id: str) -> dict[str, Any]:
        return self._json("POST", f"/robots/{_seg(robot_id)}/estop/reset")

    # ------------------------------------------------------------------ tasks
    def create_task(
        self, robot_id: str, text: str, idempotency_key: str | None = None, allow_unlisted: bool = False
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body: dict[str, Any] = {"robot_id": robot_id, "text": text}
        if allow_unlisted:
            body["allow_unlisted"] = True
        return self._json("POST", "/tasks", json=body, headers=headers)

    def tasks(self, robot_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if robot_id:
            params["robot_id"] = robot_id
        return list(self._json("GET", "/tasks", params=params)["items"])

    def task(self, task_id: str) -> dict[str, Any]:
        return self._json("GET", f"/tasks/{_seg(task_id)}")

    def task_events(self, task_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/tasks/{_seg(task_id)}/events", params={"limit": limit})["items"])

    def pause(self, task_id: str) -> dict[str, Any]:
        return self._json("POST", f"/tasks/{_seg(task_id)}/pause")

    def resume(self, task_id: str) -> dict[str, Any]:
        return self._json("POST", f"/tasks/{_seg(task_id)}/resume")

    def abort(self, task_id: str) -> dict[str, Any]:
        return self._json("POST", f"/tasks/{_seg(task_id)}/abort")

    def coach(self, task_id: str, utterance: str) -> dict[str, Any]:
        return self._json("POST", f"/tasks/{_seg(task_id)}/coaching", json={"utterance": utterance})

    # ------------------------------------------------------------------ episodes
    def episodes(
        self,
        robot_id: str | None = None,
        task: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        params = {
            "robot_id": robot_id or None,
            "task": task or None,
            "outcome": outcome or None,
            "since": since,
            "limit": limit,
        }
        return list(self._json("GET", "/episodes", params={k: v for k, v in params.items() if v is not None})["items"])

    def episode(self, robot_id: str, index: int) -> dict[str, Any]:
        return self._json("GET", f"/episodes/{_seg(robot_id)}/{int(index)}")

    def timeline(self, robot_id: str, index: int) -> dict[str, Any]:
        return self._json("GET", f"/episodes/{_seg(robot_id)}/{int(index)}/timeline")

    def episode_data(self, robot_id: str, index: int, max_points: int = 2000) -> dict[str, Any]:
        """Per-frame timestamps, state and executed actions (for plots), decimated to at most max_points rows."""
        return self._json("GET", f"/episodes/{_seg(robot_id)}/{int(index)}/data", params={"max_points": max_points})

    def episode_video(self, robot_id: str, index: int, camera: str) -> bytes:
        return self._request("GET", f"/episodes/{_seg(robot_id)}/{int(index)}/video/{_seg(camera)}").content

    def label_episode(self, robot_id: str, index: int, outcome: str, success: bool | None) -> dict[str, Any]:
        return self._json(
            "POST", f"/episodes/{_seg(robot_id)}/{int(index)}/label", json={"outcome": outcome, "success": success}
        )

    def export_rerun(self, robot_id: str, index: int) -> bytes:
        """The episode as a Rerun .rrd recording (cameras, state, actions, subtask timeline)."""
        return self._request("GET", f"/episodes/{_seg(robot_id)}/{int(index)}/rerun").content


def _seg(value: str) -> str:
    """One URL path segment, escaped (robot ids and task ids come from users and configs)."""
    return quote(str(value), safe="")


def _error_from(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        return ApiError(response.status_code, str(body["code"]), str(body.get("message", "")))
    text = response.text.strip()[:200] or response.reason_phrase
    return ApiError(response.status_code, f"http_{response.status_code}", text)
