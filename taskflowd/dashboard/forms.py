"""The task form (raw text fields ⇄ `TaskSpec`) and the run form (→ `RunSpec`), with one
message per bad field.

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
    RunSpec,
    TaskSpec,
    validate_run,
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
RUN_LABELS = {
    "payload": "Payload (JSON)",
    "priority": "Priority",
    "delay": "Delay (seconds)",
    "runAt": "Run at",
}
"""The inputs of the run form and their labels."""
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
class Form:
    """What a form shows: the values as typed (one per input) and a message per input."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    """A message about the whole form (e.g. a handler only admins may use)."""

    def add(self, errors: list[FieldError]) -> None:
        """Put each error next to its input; one about no input becomes the problem."""
        for error in errors:
            name = input_name(error.field)
            if name in self.values:
                self.errors.setdefault(name, _message(error))
            else:
                self.problem = f"{error.field}: {error.message}"


def input_name(api_field: str) -> str:
    """The form input an API field path belongs to (`payload.url` → `payload`)."""
    head = api_field.split(".", 1)[0].split("[", 1)[0]
    return _INPUT_OF.get(head, head)


def _message(error: FieldError) -> str:
    """The message shown after the input's label; names the part of a JSON document it is
    about (`payload.url` → "url: Field required")."""
    head = error.field.split(".", 1)[0].split("[", 1)[0]
    inner = error.field[len(head) :].lstrip(".")
    return f"{inner}: {error.message}" if inner else error.message


def blank_form(timezone: str = "UTC") -> Form:
    return Form(
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


def form_of_task(task: Task) -> Form:
    """The edit form of an existing task."""
    tz = _zone(task.timezone)
    scheduled = ""
    if task.type is TaskType.ONE_TIME and task.scheduled_at is not None:
        local = task.scheduled_at.astimezone(tz) if tz else task.scheduled_at
        scheduled = local.strftime("%Y-%m-%dT%H:%M:%S")
    delay = ""
    if task.delay_ms is not None:
        delay = f"{task.delay_ms / 1000:g}"
    return Form(
        {
            "name": task.name,
            "description": task.description,
            "type": task.type.value,
            "handler": task.handler,
            "payload": _json_text(task.payload),
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


def read_form(data: Mapping[str, Any], fixed_type: TaskType | None = None) -> Form:
    """The submitted form; inputs left out entirely take the new-task defaults."""
    defaults = blank_form().values
    values = {}
    for name in FIELDS:
        raw = data.get(name, defaults[name])
        values[name] = raw if isinstance(raw, str) else ""
    if fixed_type is not None:
        values["type"] = fixed_type.value
    return Form(values)


def to_spec(form: Form) -> TaskSpec | None:
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


def run_form_of_task(task: Task) -> Form:
    """The run form of a task: its payload to start from, everything else the task's."""
    return Form({"payload": _json_text(task.payload), "priority": "", "delay": "", "runAt": ""})


def read_run_form(data: Mapping[str, Any]) -> Form:
    values = {}
    for name in RUN_LABELS:
        raw = data.get(name, "")
        values[name] = raw if isinstance(raw, str) else ""
    return Form(values)


def to_run_spec(form: Form, timezone: str) -> RunSpec | None:
    """The run the form asks for (its payload always given: empty means none), with a run
    time read in the task's `timezone`; None, with `form.errors` set, when it cannot be
    read. Left empty, the priority is the task's and the run is due now."""
    v = form.values
    errors: list[FieldError] = []
    payload = _payload(errors, v["payload"])
    priority = _int(errors, "priority", v["priority"], required=False)
    delay_ms = _delay_ms(errors, v["delay"]) if v["delay"].strip() else None
    when = v["runAt"].strip()
    run_at = _local_time(errors, when, timezone, "runAt") if when else None
    spec = RunSpec(
        payload=payload, has_payload=True, priority=priority, run_at=run_at, delay_ms=delay_ms
    )
    if not errors:
        return spec
    form.add(errors)
    form.add(validate_run(spec))
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
    elif task_type is TaskType.ONE_TIME and v["scheduledAt"].strip():
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


def _json_text(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


def _local_time(
    errors: list[FieldError], raw: str, timezone: str, name: str = "scheduledAt"
) -> datetime | None:
    for fmt in _LOCAL_FORMATS:
        try:
            naive = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    else:
        errors.append(FieldError(name, "must be a date and time, e.g. 2026-05-01T09:00"))
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
