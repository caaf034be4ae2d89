"""Logging: one JSON object per line on stderr, or plain text for a terminal.

Context (request id, task id, execution id, node id) travels in context variables, so
every line logged while handling a request or running a job carries it. A redaction
filter masks values under secret-looking keys and bearer tokens in messages.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("task_id", default=None)
execution_id_var: ContextVar[str | None] = ContextVar("execution_id", default=None)
node_id_var: ContextVar[str | None] = ContextVar("node_id", default=None)

_CONTEXT = (
    ("request_id", request_id_var),
    ("task_id", task_id_var),
    ("execution_id", execution_id_var),
    ("node_id", node_id_var),
)
SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|credential|private[_-]?key",
    re.IGNORECASE,
)
_INLINE_SECRETS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|"
    r"((?:password|passwd|secret|token|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
)
REDACTED = "[REDACTED]"


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with secret-looking keys masked, recursively (bounded depth)."""
    if depth > 20:
        return REDACTED
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and SECRET_KEYS.search(k) else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    return _INLINE_SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)


class ContextFilter(logging.Filter):
    """Adds the context variables to each record and redacts its message and extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        record.msg = redact_text(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = redact(fields)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, _ in _CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{n}={getattr(record, n)}" for n, _ in _CONTEXT if getattr(record, n, None)]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            extras.extend(f"{k}={v}" for k, v in fields.items())
        return f"{line} {' '.join(extras)}" if extras else line


def configure(level: str = "INFO", fmt: str = "json", stream: Any = None) -> logging.Handler:
    """Route the `taskflowd` loggers (and aiohttp's) to one stderr handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
