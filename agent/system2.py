"""System 2: the high level that turns (observation, task) into the next short subtask, or "done".

Three interchangeable backends behind one `predict(obs, task) -> str` interface:
- `LocalSystem2`: the same π₀.₅ weights decode the subtask on the policy worker (the paper's setup),
- `OpenAISystem2`: any OpenAI-compatible vision chat server (`vllm serve`, a hosted VLM) — images go as
  base64 data URLs, the prompt asks for one lowercase imperative subtask or "done",
- `CoachOnlySystem2`: no autonomous high level; subtasks come only from people (coaching).
Every backend returns normalized text (`normalize_subtask`), so the orchestrator, the recorder and the
console all see "pick up the cup", never "Subtask: Pick up the cup." or a chatty sentence.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

DONE = "done"
MAX_SUBTASK_WORDS = 12


class System2Error(RuntimeError):
    """System 2 could not produce a subtask (server down, bad reply); the message says which and why."""


class System2Unavailable(System2Error):
    """The System-2 server could not be reached or timed out after all retries."""


@runtime_checkable
class System2Backend(Protocol):
    """What the orchestrator needs from a high level. `autonomous` is False for backends that never propose a
    subtask on their own (coach-only): a task then waits, paused with that reason, for a coach."""

    autonomous: bool

    def predict(self, obs: Any, task: str) -> str:
        """Next subtask for `task` given `obs`, normalized; "done" ends the task; "" = no suggestion."""
        ...


def normalize_subtask(text: str) -> str:
    """Reduce a model's reply to one short lowercase imperative phrase (or "done").

    Takes the first non-empty line, strips labels such as "Subtask:" / "Next subtask:", quotes, bullets and
    trailing punctuation, and caps the length, so chatty servers still yield π₀.₅-style subtasks.
    """
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            break
    else:
        return ""
    line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line)
    line = re.sub(r"^(?:next\s+)?(?:subtask|sub-task|step|answer|command)\s*:\s*", "", line, flags=re.IGNORECASE)
    line = line.strip().strip("\"'`“”‘’").strip()
    line = re.sub(r"[.!?;:,]+$", "", line).strip()
    line = " ".join(line.lower().split())
    if re.fullmatch(r"(?:the\s+)?(?:task\s+is\s+)?(?:done|complete|completed|finished)", line):
        return DONE
    words = line.split()
    if len(words) > MAX_SUBTASK_WORDS:
        line = " ".join(words[:MAX_SUBTASK_WORDS])
    return line


class LocalSystem2:
    """System 2 decoded by the π₀.₅ model on the policy worker (`PolicyClient.subtask`).

    Give it its own client: a subtask decode is slower than a chunk, and sharing the connection would make
    chunk requests queue behind it.
    """

    autonomous = True
    name = "local"

    def __init__(self, client: Any) -> None:
        self.client = client

    def predict(self, obs: Any, task: str) -> str:
        return normalize_subtask(self.client.subtask(obs, task))


class CoachOnlySystem2:
    """No autonomous high level: the robot holds until a coach gives a subtask; never ends the task itself."""

    autonomous = False
    name = "coach-only"

    def predict(self, obs: Any, task: str) -> str:
        return ""


SYSTEM_PROMPT = (
    "You are the high-level planner of a household mobile manipulator robot. You see the robot's camera "
    "images and the overall task. Reply with the single next subtask the robot should do now, as a short "
    "lowercase imperative phrase of 2 to 8 words naming the object and, if needed, the place (for example: "
    "pick up the cup, put the cup in the sink, open the top drawer). If the task is already complete, reply "
    "with exactly: done. Reply with the subtask only, no explanation."
)


def encode_image_data_url(image: np.ndarray, fmt: str = "jpeg", quality: int = 85) -> str:
    """uint8 HxWx3 RGB -> `data:image/jpeg;base64,...` (the OpenAI vision message format)."""
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image must be uint8 of shape (H, W, 3), got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    pil_format = "JPEG" if fmt.lower() in ("jpg", "jpeg") else fmt.upper()
    Image.fromarray(array).save(buffer, format=pil_format, quality=quality)
    mime = "jpeg" if pil_format == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OpenAISystem2:
    """System 2 from an OpenAI-compatible `/v1/chat/completions` server with vision input, through the `openai` SDK.

    Keeps the subtasks it proposed for the current task as context (Hi Robot keeps the interaction history). Retries
    are the SDK's: connection errors, timeouts, 408/409/429 and 5xx, with exponential backoff and jitter, honouring the
    server's `Retry-After`; `retries` is its `max_retries`. When it gives up: `System2Unavailable` (server down,
    overloaded, timed out) or `System2Error` (request refused, reply unusable), each naming the URL and the reason.
    """

    autonomous = True
    name = "openai"

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 2,
        max_tokens: int = 24,
        cameras: Sequence[str] | None = None,
        history: int = 8,
    ) -> None:
        import openai

        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        base = url.rstrip("/").removesuffix("/chat/completions")
        base = base if base.endswith("/v1") else base + "/v1"
        self.endpoint = base + "/chat/completions"
        self.model = model
        self.retries = retries
        self.max_tokens = max_tokens
        self.cameras = list(cameras) if cameras else None
        self._history_len = history
        self._history: list[str] = []
        self._history_task: str | None = None
        self._lock = threading.Lock()
        # An explicit placeholder key: local servers (vllm) need none, and OPENAI_API_KEY from the environment must
        # never be sent to whatever server the deployment names.
        self._client = openai.OpenAI(base_url=base, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=retries)

    def build_messages(self, obs: Any, task: str) -> list[dict[str, Any]]:
        images = getattr(obs, "images", {}) or {}
        names = [n for n in (self.cameras or list(images)) if n in images]
        content: list[dict[str, Any]] = []
        lines = [f"Task: {task}"]
        if self._history and self._history_task == task:
            lines.append("Subtasks so far: " + "; ".join(self._history))
        if names:
            lines.append("Cameras: " + ", ".join(names))
        lines.append("Next subtask:")
        content.append({"type": "text", "text": "\n".join(lines)})
        for name in names:
            content.append({"type": "image_url", "image_url": {"url": encode_image_data_url(images[name])}})
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]

    def _complete(self, messages: list[dict[str, Any]]) -> str:
        import openai

        attempts = f"after {self.retries + 1} attempt(s)"
        try:
            completion = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=self.max_tokens,
                temperature=0.0,  # type: ignore[arg-type]
            )
        except openai.APITimeoutError:
            raise System2Unavailable(f"System-2 server {self.endpoint} unavailable {attempts}: timed out") from None
        except openai.APIConnectionError as exc:
            raise System2Unavailable(
                f"System-2 server {self.endpoint} unavailable {attempts}: cannot connect ({exc.__cause__ or exc})"
            ) from None
        except openai.APIStatusError as exc:
            detail = f"HTTP {exc.status_code}: {exc.response.text[:300]}"
            if exc.status_code >= 500 or exc.status_code == 429:
                raise System2Unavailable(f"System-2 server {self.endpoint} unavailable {attempts}: {detail}") from None
            raise System2Error(f"System-2 server {self.endpoint} rejected the request: {detail}") from None
        except openai.APIError as exc:  # a 200 whose body is not a chat completion
            raise System2Error(f"System-2 server {self.endpoint} sent an unusable reply: {exc}") from None
        if not completion.choices:
            raise System2Error(f"System-2 server {self.endpoint} reply has no choices: {str(completion)[:300]}")
        return completion.choices[0].message.content or ""

    def predict(self, obs: Any, task: str) -> str:
        with self._lock:
            if task != self._history_task:
                self._history, self._history_task = [], task
            subtask = normalize_subtask(self._complete(self.build_messages(obs, task)))
            if subtask and subtask != DONE and (not self._history or self._history[-1] != subtask):
                self._history = [*self._history, subtask][-self._history_len :]
            return subtask

    def close(self) -> None:
        self._client.close()


def make_system2(
    backend: str,
    *,
    policy_client: Any = None,
    openai_url: str = "http://127.0.0.1:8000/v1",
    openai_model: str = "hearth-system2",
    openai_api_key: str | None = None,
    timeout_s: float = 10.0,
    retries: int = 2,
) -> System2Backend:
    """Build a backend by its config name (`local`, `openai`, `coach-only`)."""
    if backend == "local":
        if policy_client is None:
            raise ValueError("the local System-2 backend needs a policy worker client")
        return LocalSystem2(policy_client)
    if backend == "openai":
        return OpenAISystem2(openai_url, openai_model, openai_api_key, timeout_s=timeout_s, retries=retries)
    if backend in ("coach-only", "coach_only", "coach"):
        return CoachOnlySystem2()
    raise ValueError(f"unknown System-2 backend {backend!r}; expected one of: local, openai, coach-only")
