"""The handlers every node has: `echo`, `sleep` and `fail` (the last two for test set-ups).

Each validator returns a list of FieldErrors and never raises; each `run` re-parses its
payload, so a payload stored before a rule changed fails with `invalid_payload` instead
of misbehaving.
"""

from __future__ import annotations

import asyncio

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError
from taskflowd.handlers import parsing
from taskflowd.handlers.base import PAYLOAD_MODELS, HandlerSpec, JobContext, JobError


def validate_echo(payload: JSON) -> list[FieldError]:
    """Any JSON value is a valid echo payload."""
    del payload
    return []


async def run_echo(payload: JSON, ctx: JobContext) -> JSON:
    """Return the payload unchanged."""
    del ctx
    return payload


def validate_sleep(payload: JSON) -> list[FieldError]:
    from taskflowd.handlers.payloads import SleepPayload

    return parsing.check(SleepPayload, payload)


async def run_sleep(payload: JSON, ctx: JobContext) -> JSON:
    """Sleep `seconds` without blocking the loop; cancellation ends the sleep at once."""
    del ctx
    from taskflowd.handlers.payloads import SleepPayload

    parsed = parsing.parse(SleepPayload, payload)
    await asyncio.sleep(parsed.seconds)
    return {"seconds": parsed.seconds}


def validate_fail(payload: JSON) -> list[FieldError]:
    from taskflowd.handlers.payloads import FailPayload

    return parsing.check(FailPayload, payload)


async def run_fail(payload: JSON, ctx: JobContext) -> JSON:
    """Fail (retryably) while `ctx.attempt < untilAttempt`; without `untilAttempt`, always.

    On the attempt that succeeds the result is `{"attempt": n}`.
    """
    from taskflowd.handlers.payloads import FailPayload

    parsed = parsing.parse(FailPayload, payload)
    if parsed.until_attempt is None or ctx.attempt < parsed.until_attempt:
        raise JobError(parsed.message, error_type="fail", retryable=True)
    return {"attempt": ctx.attempt}


def builtin_specs() -> list[HandlerSpec]:
    """Specs of `echo`, `sleep` and `fail`; none is admin-only."""
    return [
        HandlerSpec("echo", run_echo, validate_echo),
        HandlerSpec("sleep", run_sleep, validate_sleep, step_envelope=False, models=PAYLOAD_MODELS),
        HandlerSpec("fail", run_fail, validate_fail, step_envelope=False, models=PAYLOAD_MODELS),
    ]
