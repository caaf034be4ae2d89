"""The pruner as the daemon runs it: a supervised loop that rides out a database outage
and prunes again once the database is back."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from taskflowd.background import Supervisor
from taskflowd.config import RetentionSettings
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.store import open_store
from tests.integration.lifecycle.helpers import execution_at, ids, task_at
from tests.integration.queue.polling import eventually
from tests.integration.store.factories import make_user, now


async def test_the_loop_survives_an_outage_and_prunes_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "taskflowd.lifecycle.pruner")
    store = open_store(f"sqlite:///{tmp_path / 'loop.db'}")
    await store.start()
    crashed: list[str] = []
    supervisor = Supervisor(lambda name, exc: crashed.append(name))
    retention = dataclasses.replace(RetentionSettings(), executions_s=86_400, interval_s=1)
    pruner = Pruner(store.db, retention, "node-a", supervisor)
    try:
        owner = (await store.create_user(make_user())).id
        old = now() - timedelta(days=3)
        task = await task_at(store, owner, old, status=TaskStatus.ACTIVE)
        first = await execution_at(store, task, old, ExecutionStatus.COMPLETED)
        await pruner.start()

        async def gone(execution_id: str) -> bool:
            return execution_id not in await ids(store, "job_executions")

        await eventually(lambda: gone(first.id), "the first old execution is pruned")
        await store.db.close()  # the outage: every statement fails until it reconnects
        await eventually(lambda: _logged(caplog, "pruning paused"), "a pass fails in the outage")
        await store.db.connect()
        second = await execution_at(store, task, old, ExecutionStatus.FAILED)
        await eventually(lambda: gone(second.id), "the loop prunes again after the outage")
        await eventually(lambda: _logged(caplog, "pruning resumed"), "the loop says so")
        assert supervisor.running() == ["pruner"] and not crashed
    finally:
        await pruner.stop()
        await store.stop()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text
