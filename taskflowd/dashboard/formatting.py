"""Jinja filters: times, durations, JSON and status badges as the pages show them.

Every filter returns plain text; Jinja's autoescaping makes it safe in the page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment

# Status → badge tone, shared by tasks, executions, workflows and their runs, webhook
# endpoints and their deliveries.
_TONES = {
    "ACTIVE": "info",
    "PAUSED": "muted",
    "COMPLETED": "ok",
    "FAILED": "bad",
    "PENDING": "muted",
    "PROCESSING": "info",
    "RETRYING": "warn",
    "CANCELLED": "muted",
    "RUNNING": "info",
    "SUCCEEDED": "ok",
    "SKIPPED": "muted",
    "SENDING": "info",
    "DISABLED": "warn",
}
MAX_JSON_CHARS = 200_000


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def when(value: datetime | None) -> str:
    """UTC, to the second; the page's script shows it in the viewer's time zone too."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1:
        return "< 1 ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def pretty_json(value: Any) -> str:
    """Indented JSON; very large documents are cut, saying so."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > MAX_JSON_CHARS:
        return text[:MAX_JSON_CHARS] + f"\n… ({len(text) - MAX_JSON_CHARS} more characters)"
    return text


def tone(status: Any) -> str:
    return _TONES.get(str(status), "muted")


def short_id(value: str | None) -> str:
    """Eight characters that tell ids apart: the head of a random id, the random tail of
    a time-ordered one (version 7), whose head is the same for a minute's ids."""
    if not value:
        return ""
    return value[-8:] if len(value) == 36 and value[14] == "7" else value[:8]


def label(value: Any) -> str:
    """An enum value as words: ONE_TIME → One time."""
    return str(value).replace("_", " ").capitalize()


def error_text(error: Any) -> str:
    """The message of an execution's error document, or the document itself."""
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        if isinstance(message, str):
            return f"{kind}: {message}" if isinstance(kind, str) else message
    if error is None:
        return ""
    return error if isinstance(error, str) else json.dumps(error, default=str)[:500]


def json_value(value: Any, limit: int = 80) -> str:
    """A value as one line of JSON, cut to `limit` characters (escaped by the template)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def install_filters(env: Environment) -> None:
    env.filters.update(
        iso=iso,
        when=when,
        duration=duration,
        pretty_json=pretty_json,
        tone=tone,
        short_id=short_id,
        label=label,
        error_text=error_text,
        json_value=json_value,
    )
