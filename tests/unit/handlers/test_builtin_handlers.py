"""echo, sleep and fail: their validators and what they do when run."""

from __future__ import annotations

import asyncio
import logging

import pytest

from taskflowd.domain.errors import FieldError
from taskflowd.handlers.base import JobContext, JobError
from taskflowd.handlers.builtin import (
    builtin_specs,
    run_echo,
    run_fail,
    run_sleep,
    validate_echo,
    validate_fail,
    validate_sleep,
)


def make_ctx(attempt: int = 1) -> JobContext:
    return JobContext("exec-1", "task-1", attempt, f"exec-1:{attempt}", logging.getLogger("test"))


def fields(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


def test_builtin_specs_are_open_to_everyone() -> None:
    specs = builtin_specs()
    assert [s.name for s in specs] == ["echo", "sleep", "fail"]
    assert not any(s.admin_only for s in specs)


@pytest.mark.parametrize("payload", [None, 1, "text", [1, 2], {"any": {"nested": [True]}}])
async def test_echo_accepts_and_returns_any_json(payload: object) -> None:
    assert validate_echo(payload) == []
    assert await run_echo(payload, make_ctx()) == payload


@pytest.mark.parametrize("payload", [{"seconds": 0}, {"seconds": 1.5}, {"seconds": 86400}])
def test_sleep_accepts_numbers_in_range(payload: object) -> None:
    assert validate_sleep(payload) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"seconds": True}, "payload.seconds"),
        ({"seconds": False}, "payload.seconds"),
        ({"seconds": "1"}, "payload.seconds"),
        ({"seconds": None}, "payload.seconds"),
        ({"seconds": -0.5}, "payload.seconds"),
        ({"seconds": 86400.5}, "payload.seconds"),
        ({"seconds": float("inf")}, "payload.seconds"),
        ({}, "payload.seconds"),
        ({"seconds": 1, "secs": 2}, "payload.secs"),
        ([1], "payload"),
        (None, "payload"),
        ("1", "payload"),
    ],
)
def test_sleep_rejects_bad_payloads(payload: object, field: str) -> None:
    errors = validate_sleep(payload)
    assert fields(errors) == [field]
    assert all(e.message for e in errors)


async def test_sleep_zero_returns_its_seconds() -> None:
    assert await run_sleep({"seconds": 0}, make_ctx()) == {"seconds": 0.0}


async def test_sleep_ends_at_once_when_cancelled() -> None:
    task = asyncio.create_task(run_sleep({"seconds": 3600}, make_ctx()))
    await asyncio.sleep(0)  # let it reach its sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_sleep_with_a_stored_bad_payload_fails_for_good() -> None:
    with pytest.raises(JobError) as caught:
        await run_sleep({"seconds": "soon"}, make_ctx())
    assert caught.value.error_type == "invalid_payload"
    assert caught.value.retryable is False
    assert "payload.seconds" in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [{}, {"message": "boom"}, {"untilAttempt": 3}, {"message": "boom", "untilAttempt": 1}],
)
def test_fail_accepts_good_payloads(payload: object) -> None:
    assert validate_fail(payload) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"untilAttempt": True}, "payload.untilAttempt"),
        ({"untilAttempt": 0}, "payload.untilAttempt"),
        ({"untilAttempt": "2"}, "payload.untilAttempt"),
        ({"untilAttempt": 2.0}, "payload.untilAttempt"),
        ({"message": 5}, "payload.message"),
        ({"until_attempt": 2}, "payload.until_attempt"),
        ([], "payload"),
    ],
)
def test_fail_rejects_bad_payloads(payload: object, field: str) -> None:
    assert fields(validate_fail(payload)) == [field]


async def test_fail_fails_retryably_until_the_given_attempt() -> None:
    payload = {"message": "not yet", "untilAttempt": 3}
    for attempt in (1, 2):
        with pytest.raises(JobError) as caught:
            await run_fail(payload, make_ctx(attempt))
        assert str(caught.value) == "not yet"
        assert caught.value.error_type == "fail"
        assert caught.value.retryable is True
    assert await run_fail(payload, make_ctx(3)) == {"attempt": 3}
    assert await run_fail(payload, make_ctx(4)) == {"attempt": 4}


async def test_fail_without_until_attempt_always_fails() -> None:
    with pytest.raises(JobError) as caught:
        await run_fail({}, make_ctx(1000))
    assert caught.value.error_type == "fail"
    assert str(caught.value) == "failed on purpose"
