"""The PostgreSQL queue's LISTEN connection heals itself: after the server restarts, a
node wakes up once it listens again (wake-ups may have been missed meanwhile) and then
wakes at once on the jobs and schedule changes of another node, not at its idle timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import pytest

from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore, open_store
from tests.integration.ops.private_pg import PrivatePostgres
from tests.integration.queue.factories import due_job, new_owner, new_task
from tests.integration.queue.polling import eventually

IDLE_S = 60.0
"""The waits below time out long after any deadline: finishing early means woken."""


@dataclass(frozen=True)
class Node:
    store: SqlStore
    queue: SqlQueue


@pytest.fixture
async def nodes(private_pg: PrivatePostgres) -> AsyncIterator[list[Node]]:
    """Two started nodes, each with a pool of its own, on the private server."""
    opened: list[Node] = []
    for _ in range(2):
        store = open_store(private_pg.url)
        await store.start()
        opened.append(Node(store, SqlQueue(store.db)))
        await opened[-1].queue.start()
    yield opened
    for node in opened:
        await node.queue.stop()
        await node.store.stop()


async def woken(wait: Awaitable[None], what: str, timeout_s: float = 5.0) -> None:
    """Fail unless `wait` returns within `timeout_s`, well before its own timeout."""
    waiter = asyncio.ensure_future(wait)

    async def done() -> bool:
        return waiter.done()

    try:
        await eventually(done, what, timeout_s=timeout_s)
        await waiter
    finally:
        waiter.cancel()


async def test_a_node_listens_again_after_postgres_restarts(
    private_pg: PrivatePostgres, nodes: list[Node]
) -> None:
    a, b = (node.queue for node in nodes)
    task = await new_task(nodes[1].store, await new_owner(nodes[1].store))
    await a.wait_for_work(0)
    await a.wait_for_schedule_change(0)

    await private_pg.stop()
    await private_pg.start()

    await woken(a.wait_for_work(IDLE_S), "node A to look for work once it listens again", 30)
    await woken(a.wait_for_schedule_change(IDLE_S), "node A to look at the schedule again")

    await b.add([due_job(task)])
    await woken(a.wait_for_work(IDLE_S), "node A to be woken by node B's new job")
    await b.schedule_changed()
    await woken(a.wait_for_schedule_change(IDLE_S), "node A to hear node B's schedule change")


async def test_stop_while_postgres_is_down_releases_the_listener(
    private_pg: PrivatePostgres, nodes: list[Node]
) -> None:
    await private_pg.stop()
    await nodes[0].queue.stop()  # the listener is dead and being re-established
    await private_pg.start()
    await nodes[1].queue.stop()  # the listener is alive again or still coming back
