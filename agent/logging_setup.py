"""One structured logging setup for every hearth process.

Library code only calls `logging.getLogger(__name__)`; processes call `configure_logging` once. Records are
`key=value` lines by default (grep-able in a terminal) or JSON lines (for log shippers).
"""

from __future__ import annotations

import json
import logging
import sys
import time

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        parts = [
            f"ts={stamp}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={record.getMessage()!r}",
        ]
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                parts.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
        if record.exc_info:
            parts.append("exc=" + repr(self.formatException(record.exc_info)))
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value if isinstance(value, int | float | str | bool | type(None)) else repr(value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time, not the object that existed at configuration time.

    Background threads (webhook delivery, recorders) can log after a test harness or a daemonizing wrapper has
    replaced and closed the original stream; binding late avoids "I/O operation on closed file" errors.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str = "INFO", json_format: bool = False) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; expected one of debug, info, warning, error")
    handler = CurrentStderrHandler()
    handler.setFormatter(JsonFormatter() if json_format else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
