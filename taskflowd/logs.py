"""Logging: plain text when stderr is a terminal, else one JSON object per line (systemd's
journal, containers, pipes); `log.format` forces either.

Context (request id, task id, execution id, node id) travels in context variables, so
every line logged while handling a request or running a job carries it. A redaction
filter masks values under secret-looking keys and bearer tokens in messages. Lines are
formatted and written by a thread of their own: the event loop never waits on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
import threading
from collections import deque
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
_SENSITIVE_WORDS = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|authorization|credentials?|session[_-]?id|cookie|jwt|signature)"
)
SECRET_KEYS = re.compile(_SENSITIVE_WORDS, re.IGNORECASE)
"""A mapping key that names a secret: its whole value is masked."""
REDACTED = "[REDACTED]"

# Secrets inside free text, masked in this order. Each keeps what identifies the secret
# (the key, the scheme) and replaces only the value. Every pattern starts at a boundary
# and bounds its repetitions, so a megabyte of base64 costs linear time.
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host — database and queue URLs
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,20}://[^\s:/@]{0,256}:)[^\s@/]{1,256}(@)"),
        rf"\1{REDACTED}\2",
    ),
    # Authorization schemes followed by their credentials
    (
        re.compile(r"\b((?i:bearer)|Basic|Digest)(\s+)[A-Za-z0-9._~+/=-]{8,}"),
        rf"\1\2{REDACTED}",
    ),
    # JSON Web Tokens wherever they appear
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Cookie / Set-Cookie headers: every cookie up to the end of the line
    (re.compile(r"(?i)\b((?:set-)?cookie:[ \t]*)(?![\"'])[^\r\n]+"), rf"\1{REDACTED}"),
    # key=value, key: value, "key": "value", 'key': 'value' with a secret-looking key, also
    # when the quotes are backslash-escaped (JSON inside a repr inside a message)
    (
        re.compile(
            rf"(?i)(?<![\w.-])(\\{{0,4}}[\"']?[\w.-]{{0,40}}?{_SENSITIVE_WORDS}[\w.-]{{0,40}}"
            r"\\{0,4}[\"']?\s*[:=]\s*)"
            r"(?:\[REDACTED\]"
            r"|\\{1,4}\"(?:(?!\\{1,4}\").){0,4096}\\{1,4}\""
            r"|\\{1,4}'(?:(?!\\{1,4}').){0,4096}\\{1,4}'"
            r"|\"(?:[^\"\\]|\\.)*\""
            r"|'(?:[^'\\]|\\.)*'"
            r"|[^\s,;&}\])\\]+)"
        ),
        "",
    ),
)


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with values under secret-looking keys masked and secrets in
    strings masked, recursively (beyond depth 20 everything is masked)."""
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


_OPENING_QUOTE = re.compile(r"\\{0,4}[\"']")


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(0)[len(match.group(1)) :]
    opening = _OPENING_QUOTE.match(value)
    quote = opening.group(0) if opening else ""
    return f"{match.group(1)}{quote}{REDACTED}{quote}"


def redact_text(text: str) -> str:
    """`text` with credentials masked: URL passwords, bearer/basic credentials, JWTs,
    cookies, and values of secret-looking keys (`password=…`, `"token": "…"`)."""
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement or _mask_value, text)
    return text


VERBATIM = "verbatim"
"""An `extra` flag for lines made only of what the program chose (the access log's
method, route template and status): no secret can be in them, so they skip redaction."""


class ContextFilter(logging.Filter):
    """Adds the context variables to each record and redacts its message and extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The record's __dict__ directly: a getattr() that misses costs an exception.
        attributes = record.__dict__
        for name, var in _CONTEXT:
            if attributes.get(name) is None:
                attributes[name] = var.get()
        if attributes.get(VERBATIM, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad %-arguments must not lose the line, nor leak the arguments
            message = f"{record.msg} (unformattable log arguments)"
        record.msg = redact_text(str(message))
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = redact(fields)
        return True


class _RedactingFormatter(logging.Formatter):
    """Tracebacks and stacks are text the program did not choose: redact them too."""

    def formatException(self, ei: Any) -> str:
        return redact_text(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact_text(super().formatStack(stack_info))


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, logger, msg, the context ids, then fields."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")
        """The last whole second written and its text: lines come many per second."""

    def _time(self, created: float) -> str:
        """`created` as ISO 8601 in UTC with milliseconds (`2026-05-01T09:00:00.123+00:00`)."""
        fraction, whole = math.modf(created)  # rounded as datetime.fromtimestamp rounds
        second, micros = int(whole), round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached, text = self._second
        if cached != second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{text}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        attributes = record.__dict__
        for name, _ in _CONTEXT:
            value = attributes.get(name)
            if value is not None:
                entry[name] = value
        fields = attributes.get("fields")
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(str(key), value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(_RedactingFormatter):
    """`time LEVEL logger: message key=value …` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{n}={getattr(record, n)}" for n, _ in _CONTEXT if getattr(record, n, None)]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            extras.extend(f"{k}={v}" for k, v in fields.items())
        if not extras:
            return line
        head, newline, rest = line.partition("\n")  # context before a traceback, not after
        return f"{head} {' '.join(extras)}{newline}{rest}"


FORMATS = ("auto", "json", "text")


def resolve_format(fmt: str, stream: Any) -> str:
    """`json` or `text`: `auto` is text on an interactive terminal, JSON anywhere else."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    try:
        interactive = bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream is no terminal
        interactive = False
    return "text" if interactive else "json"


BATCH_WINDOW_S = 0.1
"""How long the log thread lets lines gather once woken: one write per batch, and no GIL
hand-over per line between the event loop and the log thread."""

_Item = logging.LogRecord | threading.Event | None


class BackgroundHandler(logging.Handler):
    """Hands records to a thread that formats and writes them with `target`, so a slow
    journal or a full pipe never stalls the event loop. The context and redaction filter
    runs in the caller, where the context variables are. `emit` only appends to a deque
    and wakes the thread if it sleeps; the thread lets lines gather for `BATCH_WINDOW_S`
    and writes each batch at once. Lines keep their order; `flush` waits until every line
    handed over is written, and `close` (which `logging.shutdown` calls at exit) writes
    them all before it returns.

    Nothing is lost between waking and draining: the thread clears `_wake` before it
    drains, so a record appended after the drain sets `_wake` again."""

    def __init__(self, target: logging.StreamHandler[Any]) -> None:
        super().__init__()
        self._target = target
        self._items: deque[_Item] = deque()
        self._wake = threading.Event()
        self._hurry = threading.Event()
        """Set by `flush` and `close`: skip the batch window."""
        self._writer = threading.Thread(target=self._write, name="taskflowd-log", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        self._items.append(record)
        if not self._wake.is_set():
            self._wake.set()

    def _hand_over(self, item: threading.Event | None) -> None:
        self._items.append(item)
        self._wake.set()
        self._hurry.set()

    def _write(self) -> None:
        while True:
            self._wake.wait()
            self._hurry.wait(BATCH_WINDOW_S)
            self._wake.clear()
            self._hurry.clear()
            records: list[logging.LogRecord] = []
            while self._items:
                item = self._items.popleft()
                if isinstance(item, logging.LogRecord):
                    records.append(item)
                    continue
                self._write_lines(records)
                records = []
                if item is None:
                    return
                item.set()
            self._write_lines(records)

    def _write_lines(self, records: list[logging.LogRecord]) -> None:
        """Format `records` and write them to the target's stream in one write."""
        if not records:
            return
        target = self._target
        lines = []
        for record in records:
            try:
                lines.append(target.format(record) + target.terminator)
            except Exception:
                target.handleError(record)
        if not lines:
            return
        with target.lock or contextlib.nullcontext():
            try:
                target.stream.write("".join(lines))
                target.flush()
            except Exception:
                target.handleError(records[-1])

    def flush(self, timeout: float = 5.0) -> None:
        if not self._writer.is_alive():
            return
        written = threading.Event()
        self._hand_over(written)
        written.wait(timeout)
        self._target.flush()

    def close(self) -> None:
        if self._writer.is_alive():
            self._hand_over(None)
            self._writer.join(timeout=5.0)
        self._target.flush()
        super().close()


def _lean_records() -> None:
    """Neither format writes the caller's file and line nor the thread or process, so
    records need not look them up: that is most of the cost of a log call (the logging
    HOWTO's "Optimization" section names these switches)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure(
    level: str = "INFO", fmt: str = "auto", stream: Any = None, *, background: bool = False
) -> logging.Handler:
    """Route the `taskflowd` loggers (and aiohttp's) to one stderr handler, formatted as
    `fmt` says (`auto`, `json` or `text`; see `resolve_format`); with `background`, a
    thread of its own writes the lines (see `BackgroundHandler`), and records skip
    collecting what no line carries (caller, thread, process: see `_lean_records`)."""
    stream = stream or sys.stderr
    writer = logging.StreamHandler(stream)
    text = resolve_format(fmt, stream) == "text"
    writer.setFormatter(TextFormatter() if text else JsonFormatter())
    handler: logging.Handler = writer
    if background:
        handler = BackgroundHandler(writer)
        _lean_records()
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
