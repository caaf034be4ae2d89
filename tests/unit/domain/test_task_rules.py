from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskflowd.domain.enums import MisfirePolicy, TaskType
from taskflowd.domain.errors import FieldError
from taskflowd.domain.rules import TaskSpec, validate_task

AT = datetime(2026, 6, 1, 9, tzinfo=UTC)
ONE_TIME = TaskSpec(name="report", type=TaskType.ONE_TIME, scheduled_at=AT)
DELAYED = TaskSpec(name="reminder", type=TaskType.DELAYED, delay_ms=60_000)
RECURRING = TaskSpec(
    name="backup", type=TaskType.RECURRING, cron_expression="0 3 * * *", timezone="Europe/Berlin"
)


def fields(spec: TaskSpec) -> list[str]:
    return [error.field for error in validate_task(spec)]


@pytest.mark.parametrize(
    "spec",
    [
        ONE_TIME,
        replace(ONE_TIME, scheduled_at=None),
        replace(ONE_TIME, scheduled_at=datetime(2001, 1, 1, tzinfo=UTC)),  # past: runs now
        DELAYED,
        replace(DELAYED, delay_ms=0),
        replace(DELAYED, delay_ms=31_536_000_000),
        RECURRING,
        replace(RECURRING, cron_expression="*/5 * * * * *", misfire_policy=MisfirePolicy.RUN_ALL),
        replace(
            ONE_TIME,
            name="x" * 200,
            description="d" * 2000,
            priority=10,
            max_retries=100,
            backoff_ms=86_400_000,
            timeout_ms=86_400_000,
            rate_limit=100_000,
            concurrency=10_000,
        ),
        replace(
            ONE_TIME,
            priority=0,
            max_retries=0,
            backoff_ms=0,
            timeout_ms=1,
            rate_limit=1,
            concurrency=1,
        ),
    ],
)
def test_valid_tasks_have_no_errors(spec: TaskSpec) -> None:
    assert validate_task(spec) == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "must not be empty"),
        ({"name": "  \t"}, "name", "must not be empty"),
        ({"name": "x" * 201}, "name", "at most 200 characters"),
        ({"description": "d" * 2001}, "description", "at most 2000 characters"),
        ({"priority": -1}, "priority", "from 0 to 10"),
        ({"priority": 11}, "priority", "from 0 to 10"),
        ({"priority": True}, "priority", "integer"),
        ({"max_retries": 101}, "maxRetries", "from 0 to 100"),
        ({"backoff_ms": -1}, "backoffMs", "from 0 to 86400000"),
        ({"backoff_ms": 86_400_001}, "backoffMs", "from 0 to 86400000"),
        ({"timeout_ms": 0}, "timeout", "from 1 to 86400000"),
        ({"timeout_ms": 86_400_001}, "timeout", "from 1 to 86400000"),
        ({"rate_limit": 0}, "rateLimit", "from 1 to 100000"),
        ({"concurrency": 10_001}, "concurrency", "from 1 to 10000"),
        ({"timezone": ""}, "timezone", "must not be empty"),
        ({"timezone": "Mars/Base"}, "timezone", "unknown time zone"),
        ({"misfire_policy": "SOMETIMES"}, "misfirePolicy", "RUN_ONCE, SKIP, RUN_ALL"),
        ({"type": "WEEKLY"}, "type", "ONE_TIME, DELAYED, RECURRING"),
        ({"scheduled_at": datetime(2026, 6, 1, 9)}, "scheduledAt", "UTC offset"),
        ({"scheduled_at": datetime(9000, 1, 1, tzinfo=UTC)}, "scheduledAt", "before the year 9000"),
        ({"scheduled_at": datetime(9999, 12, 31, tzinfo=UTC)}, "scheduledAt", "year 9000"),
        ({"cron_expression": "0 3 * * *"}, "cronExpression", "not allowed for ONE_TIME"),
        ({"delay_ms": 5}, "delayMs", "not allowed for ONE_TIME"),
    ],
)
def test_each_rule_names_its_api_field(change: dict[str, object], field: str, message: str) -> None:
    errors = validate_task(replace(ONE_TIME, **change))  # type: ignore[arg-type]
    assert [e.field for e in errors] == [field]
    assert message in errors[0].message


def test_scheduled_at_just_before_9000_with_an_offset_is_fine() -> None:
    late = datetime(8999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    assert validate_task(replace(ONE_TIME, scheduled_at=late)) == []


def test_delayed_rules() -> None:
    assert validate_task(replace(DELAYED, delay_ms=None)) == [
        FieldError("delayMs", "is required for DELAYED tasks")
    ]
    assert fields(replace(DELAYED, delay_ms=-1)) == ["delayMs"]
    assert fields(replace(DELAYED, delay_ms=31_536_000_001)) == ["delayMs"]
    assert fields(replace(DELAYED, scheduled_at=AT, cron_expression="* * * * *")) == [
        "scheduledAt",
        "cronExpression",
    ]


def test_recurring_rules() -> None:
    assert validate_task(replace(RECURRING, cron_expression=None)) == [
        FieldError("cronExpression", "is required for RECURRING tasks")
    ]
    assert validate_task(replace(RECURRING, cron_expression="0 0 30 2 *"))[0].message.startswith(
        "never fires"
    )
    errors = validate_task(replace(RECURRING, cron_expression="* * * *"))
    assert errors == [
        FieldError(
            "cronExpression",
            "expected 5 fields (minute hour day-of-month month day-of-week), "
            "or 6 with seconds first; got 4",
        )
    ]
    assert fields(replace(RECURRING, scheduled_at=AT, delay_ms=1)) == ["scheduledAt", "delayMs"]


def test_all_errors_are_reported_at_once() -> None:
    spec = replace(
        RECURRING, name="", priority=99, timezone="Nowhere", cron_expression="bad", delay_ms=1
    )
    assert sorted(fields(spec)) == ["cronExpression", "delayMs", "name", "priority", "timezone"]
