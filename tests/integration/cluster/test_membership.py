"""Cluster membership on a real store: a node's row lives from start to clean stop, dead
nodes are shown as dead and then forgotten, a missing scheduler role is reported, and
the heartbeat outlives a database that went away."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from taskflowd.background import Supervisor
from taskflowd.cluster import Membership, RoleMissing, shared_redis_url
from taskflowd.config import ClusterSettings, Settings
from taskflowd.domain.entities import Node, utcnow
from taskflowd.store import SqlStore
from tests.integration.queue.polling import eventually

FAST = ClusterSettings(heartbeat_s=0.5, node_ttl_s=2.0)


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(lambda name, exc: None)
    yield supervisor
    await supervisor.cancel_all()


def member(
    store: SqlStore, supervisor: Supervisor, roles: tuple[str, ...] = ("api", "worker")
) -> Membership:
    settings = Settings(roles=roles, cluster=FAST)
    return Membership(store, settings, f"n-{'-'.join(roles)}", supervisor)


def other_node(node_id: str, roles: tuple[str, ...], heartbeat: datetime) -> Node:
    return Node(node_id, "elsewhere", roles, "0.0.0", heartbeat, heartbeat)


async def test_a_node_registers_beats_and_leaves(store: SqlStore, supervisor: Supervisor) -> None:
    membership = member(store, supervisor)
    await membership.start()

    [node] = await store.list_nodes()
    assert (node.id, node.roles) == (membership.node_id, ("api", "worker"))
    started, first_beat = node.started_at, node.last_heartbeat

    async def beaten() -> bool:
        [node] = await store.list_nodes()
        return node.last_heartbeat > first_beat and node.started_at == started

    await eventually(beaten, "a heartbeat after the first")
    await membership.stop()
    assert await store.list_nodes() == []


async def test_dead_nodes_show_as_dead_then_go(store: SqlStore, supervisor: Supervisor) -> None:
    start = utcnow()
    clock = [start]
    membership = Membership(store, Settings(cluster=FAST), "me", supervisor, lambda: clock[0])
    later = start + timedelta(seconds=FAST.node_ttl_s)  # TTL 2 s: forgotten after 4 s

    await membership.beat()  # the first beat: this node only just began writing
    await store.upsert_node(other_node("ancient", ("worker",), start - timedelta(seconds=10)))
    await membership.beat()
    assert len(await store.list_nodes()) == 2, "nothing is forgotten in the first TTL"

    await store.upsert_node(other_node("recent", ("worker",), later - timedelta(seconds=1)))
    await store.upsert_node(other_node("dead", ("worker",), later - timedelta(seconds=3)))
    await store.upsert_node(other_node("long-dead", ("worker",), later - timedelta(seconds=5)))
    clock[0] = later
    await membership.beat()

    assert {n.id for n in await store.list_nodes()} == {"recent", "dead", "me"}
    assert {n.id for n in await membership.live_nodes()} == {"recent", "me"}


async def test_ready_needs_a_live_scheduler(store: SqlStore, supervisor: Supervisor) -> None:
    workers = member(store, supervisor, ("worker",))
    await workers.beat()
    with pytest.raises(RoleMissing, match="no live node has the scheduler role"):
        await workers.check_scheduler()

    stale = utcnow() - timedelta(seconds=FAST.node_ttl_s + 1)
    await store.upsert_node(other_node("old-scheduler", ("scheduler",), stale))
    with pytest.raises(RoleMissing):
        await workers.check_scheduler()

    await store.upsert_node(other_node("scheduler", ("scheduler",), utcnow()))
    await workers.check_scheduler()

    await store.delete_node("scheduler")
    scheduler = member(store, supervisor, ("scheduler",))
    await scheduler.check_scheduler()  # a scheduler node is its own answer


async def test_the_heartbeat_outlives_the_database(
    store: SqlStore, supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "taskflowd.cluster")
    membership = member(store, supervisor)
    await membership.start()

    await store.stop()  # every heartbeat now fails

    async def warned() -> bool:
        return any("heartbeat failed" in r.getMessage() for r in caplog.records)

    await eventually(warned, "the failing heartbeat to be logged")
    await store.start()
    await store.db.execute("DELETE FROM nodes")

    async def back() -> bool:
        healed = any("heartbeat written again" in r.getMessage() for r in caplog.records)
        return healed and [n.id for n in await store.list_nodes()] == [membership.node_id]

    await eventually(back, "the node's row to return with the database")
    assert [r for r in caplog.records if "heartbeat failed" in r.getMessage()][1:] == []
    await membership.stop()


def test_the_shared_redis_is_the_clusters_or_the_queues() -> None:
    base = Settings()
    assert shared_redis_url(base) is None
    assert shared_redis_url(Settings(queue="redis://q:6379/1")) == "redis://q:6379/1"
    cluster = dataclasses.replace(FAST, redis="redis://limits:6379/2")
    assert shared_redis_url(Settings(queue="redis://q/1", cluster=cluster)) == (
        "redis://limits:6379/2"
    )
    assert shared_redis_url(Settings(cluster=cluster)) == "redis://limits:6379/2"
