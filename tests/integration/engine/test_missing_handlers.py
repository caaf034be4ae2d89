"""The start-up check of a worker node, on both databases: which handlers ACTIVE tasks
use that the node lacks (paused, finished and deleted tasks need nothing)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from taskflowd.domain.entities import JSON, User
from taskflowd.domain.enums import TaskType
from taskflowd.handlers.base import HandlerSpec, JobContext
from taskflowd.handlers.builtin import builtin_specs, validate_echo
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.services.handler_check import MissingHandlers, check_handlers, missing_handlers
from tests.integration.engine.harness import EngineFactory, spec

FAR = datetime(2999, 1, 1, tzinfo=UTC)


async def thumbs(payload: JSON, ctx: JobContext) -> JSON:
    return payload


async def test_only_active_tasks_need_their_handlers(
    make_engine: EngineFactory, admin: User, caplog: pytest.LogCaptureFixture
) -> None:
    with_plugin = HandlerRegistry([*builtin_specs(), HandlerSpec("thumbs", thumbs, validate_echo)])
    engine = await make_engine(start=False, handlers=with_plugin)
    later = spec(handler="thumbs", scheduled_at=FAR)
    for _ in range(2):
        await engine.tasks.create(admin, later)
    paused = await engine.tasks.create(
        admin, spec(TaskType.RECURRING, handler="thumbs", cron_expression="0 * * * *")
    )
    await engine.tasks.pause(admin, paused.id)
    deleted = await engine.tasks.create(admin, later)
    await engine.tasks.delete(admin, deleted.id)
    await engine.tasks.create(admin, spec(handler="echo", scheduled_at=FAR))
    without = HandlerRegistry(builtin_specs())

    assert await missing_handlers(engine.store.db, with_plugin) == {}
    assert await missing_handlers(engine.store.db, without) == {"thumbs": 2}
    with pytest.raises(MissingHandlers, match=r"does not have: thumbs \(2 tasks\)\. Install"):
        await check_handlers(engine.store.db, without, allow_missing=False)
    with caplog.at_level(logging.WARNING, logger="taskflowd.handlers"):
        await check_handlers(engine.store.db, without, allow_missing=True)
    assert "thumbs (2 tasks); starting anyway" in caplog.text
