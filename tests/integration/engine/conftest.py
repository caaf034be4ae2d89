"""Fixtures of the engine suite: engines over the parametrised `store`, and an admin."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskflowd.domain.entities import User
from taskflowd.domain.enums import Role
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore
from tests.integration.engine.harness import SCHEDULER, WORKER, Crashes, Engine, EngineFactory
from tests.integration.queue.isolation import _pg_reused_url, pg_url
from tests.integration.store.factories import make_user

__all__ = ["_pg_reused_url", "pg_url"]


@pytest.fixture
async def make_engine(store: SqlStore) -> AsyncIterator[EngineFactory]:
    """Builds engines over the test's store (started unless `start=False`), with
    `worker={...}` and `scheduler={...}` overriding the fast test settings and
    `queue_type` a SqlQueue subclass that instruments the queue and `handlers` a
    registry of the test's own instead of the built-ins; stops them
    all afterwards and fails the test if a background loop crashed meanwhile."""
    engines: list[Engine] = []
    crashes = Crashes()
    watched = logging.getLogger("taskflowd.background")
    watched.addHandler(crashes)

    async def make(
        *,
        start: bool = True,
        worker: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        queue_type: type[SqlQueue] = SqlQueue,
        handlers: HandlerRegistry | None = None,
    ) -> Engine:
        engine = Engine(
            store,
            dataclasses.replace(WORKER, **(worker or {})),
            dataclasses.replace(SCHEDULER, **(scheduler or {})),
            queue_type,
            handlers,
        )
        engines.append(engine)
        if start:
            await engine.start()
        return engine

    try:
        yield make
    finally:
        for engine in reversed(engines):
            await engine.stop()
        watched.removeHandler(crashes)
    assert not crashes.messages, f"background loops crashed: {crashes.messages}"
    for engine in engines:
        assert not engine.fatal, f"critical background loops failed: {engine.fatal}"


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Engine:
    """A started engine with the fast test settings."""
    return await make_engine()


@pytest.fixture
async def admin(store: SqlStore) -> User:
    return await store.create_user(make_user(role=Role.ADMIN))
