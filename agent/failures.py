"""Is an error from System 1 or System 2 worth waiting out, or does it doom the task?

Transient: the worker or System-2 server is gone, timed out or late. Waiting helps, so the task pauses (with the
reason) and the loop retries. Permanent: the other side understood the request and refused it (a prompt over the
policy's token budget, an unknown key, a policy trained for another robot, a malformed reply). Retrying the same
request can never succeed and a paused task would block the queue forever, so the task fails with the message.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from agent.system2 import System2Unavailable
from policy.client import PolicyUnavailable

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    PolicyUnavailable,  # connection refused/dropped, no reply within the client's timeout
    System2Unavailable,  # the OpenAI-compatible server gave up after its retries (down, 5xx, 429, timeout)
    ConnectionError,
    TimeoutError,
    FutureTimeout,
)


@dataclass(frozen=True)
class Failure:
    transient: bool
    message: str


def classify(exc: BaseException) -> Failure:
    """Transient (pause and retry) or permanent (fail the task), with a message naming the error."""
    message = str(exc) or type(exc).__name__
    return Failure(transient=isinstance(exc, TRANSIENT_ERRORS), message=message)
