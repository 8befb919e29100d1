"""Log lines as JSON, for log pipelines: one object per line with time, level, logger, message and extras.

`BRIDGE_LOG_FORMAT=json` (or `--log-format json`) makes the CLI's stderr handler use `JsonFormatter`; any
process embedding the library can put it on its own handler. Written on the standard `logging` module rather
than with a logging library: one small class, and nothing else changes for code that logs.

The bridge never logs a secret (keys live in `SecretStr`, errors are redacted where they are made); as a
second line of defence the formatter masks `Bearer <token>` in messages and the value of any extra field
whose name says it holds a secret (`api_key`, `token`, `authorization`, ...).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter"]

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with ANSI colours
}
"""Attributes every record has: what is left of a record's `__dict__` are the caller's `extra=` fields."""
_SECRET_NAME = re.compile(r"key|token|secret|password|authorization|cookie", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_MASK = "[redacted]"


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: `time` (UTC, ISO 8601), `level`, `logger`, `message`, the
    record's `extra=` fields, and `exception` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _masked(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name in _STANDARD or name in line:
                continue
            line[name] = _MASK if _SECRET_NAME.search(name) else _plain(value)
        if record.exc_info:
            line["exception"] = _masked(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def _masked(text: str) -> str:
    return _BEARER.sub(rf"\1 {_MASK}", text)


def _plain(value: Any) -> Any:
    """A JSON-ready value: JSON types as they are, anything else as its (masked) `str`."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _masked(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _MASK if _SECRET_NAME.search(str(k)) else _plain(v) for k, v in value.items()}
    return _masked(str(value))
