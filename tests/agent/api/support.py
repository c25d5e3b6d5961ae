"""Helpers for API tests: the real app served by uvicorn on loopback, and clients with role tokens."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import uvicorn

from agent.store import Store
from tests.support import free_port, wait_until

ROLES = ("viewer", "operator", "automation", "admin")


class ServedApp:
    """uvicorn serving an app on 127.0.0.1 in a thread (lifespan included), stopped on exit."""

    def __init__(self, app, port: int | None = None):
        self.app = app
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", ws="websockets-sansio"
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=30, what="uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@dataclass
class Clients:
    """One httpx client per role (plus an anonymous one), all pointed at the served app."""

    base_url: str
    tokens: dict[str, str]

    def client(self, role: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


def make_tokens(store: Store) -> dict[str, str]:
    return {role: store.create_token(f"test-{role}", role)[1] for role in ROLES}


@contextlib.contextmanager
def role_clients(base_url: str, tokens: dict[str, str]) -> Iterator[dict[str | None, httpx.Client]]:
    clients = Clients(base_url, tokens)
    opened = {role: clients.client(role) for role in (*ROLES, None)}
    try:
        yield opened
    finally:
        for client in opened.values():
            client.close()


class Receiver:
    """A tiny webhook receiver that fails the first `fail_first` requests with 500."""

    def __init__(self, fail_first: int = 0):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                status = 500 if len(outer.requests) <= outer.fail_first else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def fuzz_operations(base_url: str, headers: dict[str, str], examples: int, check: Callable[..., None]) -> list[str]:
    """Drive every operation in the served OpenAPI document with `examples` derandomized hypothesis cases, calling
    `check(case, response)` on each answer; returns one failure line per failing operation (all are run).

    (Operations are driven one by one with hypothesis rather than schemathesis' pytest plugin, whose fixture
    loader does not work with this pytest.)"""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def run(case):
            check(case, case.call(headers=headers, timeout=30))

        try:
            run()
        except Exception as exc:  # collect all operations' failures, then report them together
            failures.append(f"{operation.label}: {exc}")
    return failures
