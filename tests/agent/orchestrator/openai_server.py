"""A small OpenAI-compatible chat-completions server for tests, on loopback, answering from simple rules.

It really parses the request the way a vision server must: the images arrive as base64 data URLs and are
decoded (their sizes are kept for assertions), the task is read from the text part, and the next subtask is
chosen from a fixed plan using the "Subtasks so far" history the client sends, then "done".
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

from tests.support import free_port

PLANS = {
    "put the cup in the sink": ["pick up the cup", "put the cup in the sink"],
}


class RuleServer:
    def __init__(
        self,
        fail_first: int = 0,
        plans: dict[str, list[str]] | None = None,
        fail_status: int = 503,
        retry_after: str | None = None,
    ) -> None:
        """The first `fail_first` requests get `fail_status` (with a `Retry-After` header when given)."""
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.plans = plans or PLANS
        self.requests: list[dict] = []
        self.image_shapes: list[tuple[int, ...]] = []
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()

    def answer(self, body: dict) -> str:
        user = next(m for m in body["messages"] if m["role"] == "user")
        text = next(p["text"] for p in user["content"] if p["type"] == "text")
        for part in user["content"]:
            if part["type"] == "image_url":
                header, data = part["image_url"]["url"].split(",", 1)
                assert header.startswith("data:image/") and header.endswith(";base64")
                image = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
                self.image_shapes.append(image.shape)
        task = text.split("\n")[0].removeprefix("Task: ").strip()
        done = []
        for line in text.split("\n"):
            if line.startswith("Subtasks so far: "):
                done = line.removeprefix("Subtasks so far: ").split("; ")
        plan = self.plans.get(task, [])
        remaining = [s for s in plan if s not in done]
        # a chatty model: label + capitals + punctuation, which the client must normalize
        return f"Subtask: {remaining[0].capitalize()}." if remaining else "Done."


@contextlib.contextmanager
def serve_rules(server_state: RuleServer) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            with server_state._lock:
                server_state.requests.append(body)
                server_state.auth_headers.append(self.headers.get("Authorization"))
                failing = len(server_state.requests) <= server_state.fail_first
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
            elif failing:
                headers = {"Retry-After": server_state.retry_after} if server_state.retry_after else {}
                self._send(server_state.fail_status, {"error": {"message": "model is loading"}}, headers)
            else:
                content = server_state.answer(body)
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                    },
                )

        def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
