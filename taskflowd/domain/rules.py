"""Rules a task must satisfy, shared by the HTTP API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from taskflowd.domain.entities import JSON
from taskflowd.domain.enums import MisfirePolicy, TaskType
from taskflowd.domain.errors import FieldError
from taskflowd.domain.schedule import CronError, TimezoneError, parse_cron, validate_timezone

DEFAULT_PRIORITY = 0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_MS = 1000

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000
MAX_DELAY_MS = 31_536_000_000  # one year
_LAST_YEAR = 8999

# (API field, attribute, lowest, highest) for the integers every task type shares.
_RANGES = (
    ("priority", "priority", 0, 10),
    ("maxRetries", "max_retries", 0, 100),
    ("backoffMs", "backoff_ms", 0, 86_400_000),
)
_OPTIONAL_RANGES = (
    ("timeout", "timeout_ms", 1, 86_400_000),
    ("rateLimit", "rate_limit", 1, 100_000),
    ("concurrency", "concurrency", 1, 10_000),
)
BOUNDS = {attr: (low, high) for _, attr, low, high in (*_RANGES, *_OPTIONAL_RANGES)}
"""Inclusive bounds of each integer setting, by TaskSpec attribute."""

# Which of the when-to-run fields each type takes; the others must be left unset.
_WHEN_FIELDS = {
    TaskType.ONE_TIME: frozenset({"scheduledAt"}),
    TaskType.DELAYED: frozenset({"delayMs"}),
    TaskType.RECURRING: frozenset({"cronExpression"}),
    TaskType.ON_DEMAND: frozenset(),
}


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """The fields a user sets on a task, before it is stored."""

    name: str
    type: TaskType
    description: str = ""
    handler: str = "echo"
    payload: JSON = None
    cron_expression: str | None = None
    timezone: str = "UTC"
    scheduled_at: datetime | None = None
    delay_ms: int | None = None
    priority: int = DEFAULT_PRIORITY
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_ms: int = DEFAULT_BACKOFF_MS
    timeout_ms: int | None = None
    rate_limit: int | None = None
    concurrency: int | None = None
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE


def validate_task(spec: TaskSpec) -> list[FieldError]:
    """Every rule `spec` breaks, one FieldError per bad field named as in the API
    (camelCase); empty when the task is valid. Handler names and payloads are checked
    by the handler registry, not here; values are judged as given, never trimmed.
    """
    errors: list[FieldError] = []
    _check_text(errors, spec)
    _check_numbers(errors, spec)
    if spec.misfire_policy not in frozenset(MisfirePolicy):
        errors.append(FieldError("misfirePolicy", f"must be one of {_choices(MisfirePolicy)}"))
    try:
        validate_timezone(spec.timezone)
    except TimezoneError as exc:
        errors.append(FieldError("timezone", str(exc)))
    if spec.type not in frozenset(TaskType):
        errors.append(FieldError("type", f"must be one of {_choices(TaskType)}"))
    else:
        _check_when(errors, spec)
    return errors


def _check_text(errors: list[FieldError], spec: TaskSpec) -> None:
    if not spec.name.strip():
        errors.append(FieldError("name", "must not be empty or only spaces"))
    elif len(spec.name) > MAX_NAME_LENGTH:
        errors.append(FieldError("name", f"must be at most {MAX_NAME_LENGTH} characters"))
    if len(spec.description) > MAX_DESCRIPTION_LENGTH:
        errors.append(
            FieldError("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
        )


def _check_numbers(errors: list[FieldError], spec: TaskSpec) -> None:
    for api_name, attribute, lowest, highest in _RANGES:
        _check_int(errors, api_name, getattr(spec, attribute), lowest, highest)
    for api_name, attribute, lowest, highest in _OPTIONAL_RANGES:
        value = getattr(spec, attribute)
        if value is not None:
            _check_int(errors, api_name, value, lowest, highest)


def _check_when(errors: list[FieldError], spec: TaskSpec) -> None:
    given = {
        "scheduledAt": spec.scheduled_at is not None,
        "delayMs": spec.delay_ms is not None,
        "cronExpression": spec.cron_expression is not None,
    }
    allowed = _WHEN_FIELDS[spec.type]
    for api_name, is_set in given.items():
        if is_set and api_name not in allowed:
            errors.append(FieldError(api_name, f"is not allowed for {spec.type} tasks"))
    if spec.type is TaskType.ONE_TIME and spec.scheduled_at is not None:
        _check_instant(errors, "scheduledAt", spec.scheduled_at)
    elif spec.type is TaskType.DELAYED:
        if spec.delay_ms is None:
            errors.append(FieldError("delayMs", "is required for DELAYED tasks"))
        else:
            _check_int(errors, "delayMs", spec.delay_ms, 0, MAX_DELAY_MS)
    elif spec.type is TaskType.RECURRING:
        if spec.cron_expression is None:
            errors.append(FieldError("cronExpression", "is required for RECURRING tasks"))
        else:
            try:
                parse_cron(spec.cron_expression)
            except CronError as exc:
                errors.append(FieldError("cronExpression", str(exc)))


def _check_int(
    errors: list[FieldError], field: str, value: object, lowest: int, highest: int
) -> None:
    # bool is an int subclass, but `true` is never a meaningful priority or delay.
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        errors.append(FieldError(field, f"must be an integer from {lowest} to {highest}"))


def _check_instant(errors: list[FieldError], field: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        errors.append(FieldError(field, "must include a UTC offset, e.g. 2026-05-01T09:00:00Z"))
    elif value.year > _LAST_YEAR:
        errors.append(FieldError(field, f"must be before the year {_LAST_YEAR + 1}"))


def _choices(values: type[TaskType] | type[MisfirePolicy]) -> str:
    return ", ".join(member.value for member in values)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run of a task asked for through the API. Left unset, the payload and the
    priority are the task's, and the run is due now; `run_at` and `delay_ms` exclude
    each other. `idempotency_key` makes the run unique per task."""

    payload: JSON = None
    has_payload: bool = False
    priority: int | None = None
    run_at: datetime | None = None
    delay_ms: int | None = None
    idempotency_key: str | None = None


def validate_run(spec: RunSpec) -> list[FieldError]:
    """Every rule `spec` breaks (the payload is the handler's to judge)."""
    errors: list[FieldError] = []
    if spec.priority is not None:
        low, high = BOUNDS["priority"]
        _check_int(errors, "priority", spec.priority, low, high)
    if spec.run_at is not None and spec.delay_ms is not None:
        errors.append(FieldError("delayMs", "give runAt or delayMs, not both"))
    elif spec.run_at is not None:
        _check_instant(errors, "runAt", spec.run_at)
    elif spec.delay_ms is not None:
        _check_int(errors, "delayMs", spec.delay_ms, 0, MAX_DELAY_MS)
    return errors
