"""A handler's result or error holding a NUL (U+0000), which PostgreSQL refuses in text
columns: results and errors are JSON documents, stored as JSON text, so the NUL is kept
faithfully on both databases, and the worker goes on recording other outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskflowd.domain.entities import JSON, User
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.handlers.base import HandlerSpec, JobContext, JobError
from taskflowd.handlers.builtin import builtin_specs, validate_echo
from taskflowd.handlers.registry import HandlerRegistry
from tests.integration.engine.harness import Engine, EngineFactory, spec

NUL_RESULT = {"text": "a\u0000b", "key\u0000": ["\u0000"]}


async def nul_result(payload: JSON, ctx: JobContext) -> JSON:
    return NUL_RESULT


async def nul_error(payload: JSON, ctx: JobContext) -> JSON:
    raise JobError("broke at \u0000 byte", error_type="odd\u0000type", retryable=False)


async def nul_exception(payload: JSON, ctx: JobContext) -> JSON:
    raise ValueError("a\u0000b")


@pytest.fixture
async def engine(make_engine: EngineFactory) -> AsyncIterator[Engine]:
    plugins = [
        HandlerSpec(fn.__name__, fn, validate_echo) for fn in (nul_result, nul_error, nul_exception)
    ]
    yield await make_engine(handlers=HandlerRegistry([*builtin_specs(), *plugins]))


async def test_a_result_with_a_nul_is_stored_as_it_was(engine: Engine, admin: User) -> None:
    task = await engine.tasks.create(admin, spec(handler="nul_result"))
    after = await engine.tasks.create(admin, spec(handler="echo", payload={"n": 1}))

    [done] = await engine.wait_until_final(task.id)
    [next_one] = await engine.wait_until_final(after.id)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == NUL_RESULT
    assert next_one.status is ExecutionStatus.COMPLETED and next_one.result == {"n": 1}


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        ("nul_error", {"type": "odd\u0000type", "message": "broke at \u0000 byte"}),
        ("nul_exception", {"type": "exception", "message": "ValueError: a\u0000b"}),
    ],
)
async def test_an_error_with_a_nul_is_stored_as_it_was(
    engine: Engine, admin: User, handler: str, error: dict[str, str]
) -> None:
    task = await engine.tasks.create(admin, spec(handler=handler))

    [failed] = await engine.wait_until_final(task.id)

    assert failed.status is ExecutionStatus.FAILED
    assert failed.error == error
    [history] = await engine.history(failed.id)
    assert history.error == error
    [dead] = await engine.dead_letter()
    assert dead.error == error
