"""The task form: raw text fields ⇄ `TaskSpec`, with one message per bad field.

Form inputs carry the API's field names, so the services' `FieldError`s land next to the
input they are about; the only exception is the delay, which people type in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from taskflowd.domain.entities import Task
from taskflowd.domain.enums import MisfirePolicy, TaskType
from taskflowd.domain.errors import FieldError
from taskflowd.domain.rules import (
    DEFAULT_BACKOFF_MS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    MAX_DELAY_MS,
    TaskSpec,
    validate_task,
)
from taskflowd.domain.schedule import TimezoneError, validate_timezone
from taskflowd.domain.text import nul_errors

MAX_PAYLOAD_CHARS = 65_536
LABELS = {
    "name": "Name",
    "description": "Description",
    "type": "Type",
    "handler": "Handler",
    "payload": "Payload (JSON)",
    "cronExpression": "Cron expression",
    "timezone": "Time zone",
    "scheduledAt": "Run at",
    "delay": "Delay (seconds)",
    "priority": "Priority",
    "maxRetries": "Retries",
    "backoffMs": "Backoff (ms)",
    "timeout": "Timeout (ms)",
    "rateLimit": "Rate limit (starts per minute)",
    "concurrency": "Concurrency",
    "misfirePolicy": "When runs were missed",
}
"""The label of each input, also used in the error summary."""
FIELDS = tuple(LABELS)
_INPUT_OF = {"delayMs": "delay"}
_REQUIRED_INTS = (
    ("priority", "priority"),
    ("maxRetries", "max_retries"),
    ("backoffMs", "backoff_ms"),
)
_OPTIONAL_INTS = (
    ("timeout", "timeout_ms"),
    ("rateLimit", "rate_limit"),
    ("concurrency", "concurrency"),
)
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


@dataclass
class TaskForm:
    """What the form shows: the values as typed and a message per input name."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    """A message about the whole form (e.g. a handler only admins may use)."""

    def add(self, errors: list[FieldError]) -> None:
        for error in errors:
            name = input_name(error.field)
            if name in FIELDS:
                # A message about a part of an input (`payload.headers.x`) names the part.
                nested = error.field not in (name, *_INPUT_OF)
                message = f"{error.field}: {error.message}" if nested else error.message
                self.errors.setdefault(name, message)
            else:
                self.problem = f"{error.field}: {error.message}"


def input_name(api_field: str) -> str:
    """The form input an API field path belongs to (`payload.url` → `payload`)."""
    head = api_field.split(".", 1)[0].split("[", 1)[0]
    return _INPUT_OF.get(head, head)


def blank_form(timezone: str = "UTC") -> TaskForm:
    return TaskForm(
        {
            "name": "",
            "description": "",
            "type": TaskType.RECURRING.value,
            "handler": "echo",
            "payload": "",
            "cronExpression": "*/5 * * * *",
            "timezone": timezone,
            "scheduledAt": "",
            "delay": "60",
            "priority": str(DEFAULT_PRIORITY),
            "maxRetries": str(DEFAULT_MAX_RETRIES),
            "backoffMs": str(DEFAULT_BACKOFF_MS),
            "timeout": "",
            "rateLimit": "",
            "concurrency": "",
            "misfirePolicy": MisfirePolicy.RUN_ONCE.value,
        }
    )


def form_of_task(task: Task) -> TaskForm:
    """The edit form of an existing task."""
    tz = _zone(task.timezone)
    scheduled = ""
    if task.type is TaskType.ONE_TIME and task.scheduled_at is not None:
        local = task.scheduled_at.astimezone(tz) if tz else task.scheduled_at
        scheduled = local.strftime("%Y-%m-%dT%H:%M:%S")
    delay = ""
    if task.delay_ms is not None:
        delay = f"{task.delay_ms / 1000:g}"
    return TaskForm(
        {
            "name": task.name,
            "description": task.description,
            "type": task.type.value,
            "handler": task.handler,
            "payload": "" if task.payload is None else json.dumps(task.payload, indent=2),
            "cronExpression": task.cron_expression or "",
            "timezone": task.timezone,
            "scheduledAt": scheduled,
            "delay": delay,
            "priority": str(task.priority),
            "maxRetries": str(task.max_retries),
            "backoffMs": str(task.backoff_ms),
            "timeout": _text(task.timeout_ms),
            "rateLimit": _text(task.rate_limit),
            "concurrency": _text(task.concurrency),
            "misfirePolicy": task.misfire_policy.value,
        }
    )


def read_form(data: Mapping[str, Any], fixed_type: TaskType | None = None) -> TaskForm:
    """The submitted form; inputs left out entirely take the new-task defaults."""
    defaults = blank_form().values
    values = {}
    for name in FIELDS:
        raw = data.get(name, defaults[name])
        values[name] = raw if isinstance(raw, str) else ""
    if fixed_type is not None:
        values["type"] = fixed_type.value
    return TaskForm(values)


def to_spec(form: TaskForm) -> TaskSpec | None:
    """The task the form describes; None (with `form.errors` set) when it cannot be read.

    Only what cannot be expressed as a TaskSpec is checked here (numbers, JSON, dates);
    the task rules themselves are the service's to judge.
    """
    v = form.values
    errors: list[FieldError] = []
    try:
        task_type = TaskType(v["type"])
    except ValueError:
        errors.append(FieldError("type", "choose one of the listed types"))
        task_type = TaskType.ONE_TIME
    try:
        misfire = MisfirePolicy(v["misfirePolicy"])
    except ValueError:
        errors.append(FieldError("misfirePolicy", "choose one of the listed policies"))
        misfire = MisfirePolicy.RUN_ONCE
    required = [_int(errors, api, v[api], required=True) for api, _ in _REQUIRED_INTS]
    optional = {attr: _int(errors, api, v[api], required=False) for api, attr in _OPTIONAL_INTS}
    payload = _payload(errors, v["payload"])
    timezone = v["timezone"].strip() or "UTC"
    when = _when(errors, task_type, v, timezone)
    priority, max_retries, backoff_ms = required
    spec = TaskSpec(
        name=v["name"].strip(),
        type=task_type,
        description=v["description"].strip(),
        handler=v["handler"].strip() or "echo",
        payload=payload,
        timezone=timezone,
        misfire_policy=misfire,
        priority=DEFAULT_PRIORITY if priority is None else priority,
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        backoff_ms=DEFAULT_BACKOFF_MS if backoff_ms is None else backoff_ms,
        timeout_ms=optional["timeout_ms"],
        rate_limit=optional["rate_limit"],
        concurrency=optional["concurrency"],
        **when,
    )
    if not errors:
        return spec
    # Report everything at once: the task rules judge the fields that could be read.
    form.add(errors)
    form.add(validate_task(spec))
    return None


def changes_of(spec: TaskSpec) -> dict[str, Any]:
    """`spec` as a full set of changes for `TaskService.update` (everything but the type)."""
    from taskflowd.services.tasks import SPEC_FIELDS

    return {name: getattr(spec, name) for name in SPEC_FIELDS if name != "type"}


def _when(
    errors: list[FieldError], task_type: TaskType, v: Mapping[str, str], timezone: str
) -> dict[str, Any]:
    when: dict[str, Any] = {"cron_expression": None, "scheduled_at": None, "delay_ms": None}
    if task_type is TaskType.RECURRING:
        when["cron_expression"] = v["cronExpression"].strip()
    elif task_type is TaskType.DELAYED:
        when["delay_ms"] = _delay_ms(errors, v["delay"])
    elif v["scheduledAt"].strip():
        when["scheduled_at"] = _local_time(errors, v["scheduledAt"].strip(), timezone)
    return when


def _int(errors: list[FieldError], name: str, raw: str, *, required: bool) -> int | None:
    text = raw.strip()
    if not text:
        if required:
            errors.append(FieldError(name, "is required"))
        return None
    try:
        return int(text)
    except ValueError:
        errors.append(FieldError(name, "must be a whole number"))
        return None


def _delay_ms(errors: list[FieldError], raw: str) -> int | None:
    try:
        seconds = float(raw.strip())
    except ValueError:
        errors.append(FieldError("delay", "must be a number of seconds, e.g. 90 or 0.5"))
        return None
    delay_ms = round(seconds * 1000)
    if not 0 <= delay_ms <= MAX_DELAY_MS:
        errors.append(FieldError("delay", f"must be from 0 to {MAX_DELAY_MS // 1000} seconds"))
        return None
    return delay_ms


def _payload(errors: list[FieldError], raw: str) -> Any:
    if not raw.strip():
        return None
    if len(raw) > MAX_PAYLOAD_CHARS:
        errors.append(FieldError("payload", f"must be at most {MAX_PAYLOAD_CHARS} characters"))
        return None
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        errors.append(
            FieldError(
                "payload", f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            )
        )
        return None
    # The middleware refused raw NULs in the form; a "\u0000" escape decodes to one here.
    refused = nul_errors(payload, ("payload",))
    errors.extend(refused)
    return None if refused else payload


def _local_time(errors: list[FieldError], raw: str, timezone: str) -> datetime | None:
    for fmt in _LOCAL_FORMATS:
        try:
            naive = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    else:
        errors.append(FieldError("scheduledAt", "must be a date and time, e.g. 2026-05-01T09:00"))
        return None
    tz = _zone(timezone)
    if tz is None:
        return None  # the time zone gets its own message from the task rules
    return naive.replace(tzinfo=tz)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return validate_timezone(name)
    except TimezoneError:
        return None


def _text(value: int | None) -> str:
    return "" if value is None else str(value)
