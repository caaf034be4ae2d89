"""The wake-ups the Redis queue publishes when it queues jobs, and which of them wake a
claim loop: not the sender's own (its worker was woken, or left asleep, when it queued
them), and not an idle loop that looks again before the earliest of the jobs is due.
Each empty claim would take a Redis round trip and delay the next real one."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from taskflowd.domain.entities import Task
from taskflowd.queue.redis import RedisQueue, wakes
from taskflowd.store import SqlStore
from tests.conftest import RedisTarget
from tests.integration.queue.factories import due_job, later, now


@pytest.fixture
async def nodes(store: SqlStore, redis_target: RedisTarget) -> AsyncIterator[list[RedisQueue]]:
    """Two Redis queues over one store and one index: two nodes."""
    started = []
    try:
        for _ in range(2):
            queue = RedisQueue(store.db, redis_target.url, keys=redis_target.keys)
            await queue.start()
            started.append(queue)
        yield started
    finally:
        for queue in started:
            await queue.stop()


@pytest.fixture
async def channel(redis_target: RedisTarget) -> AsyncIterator[aioredis.client.PubSub]:
    """A subscription to the queue's wake-up channel, as the test's own listener."""
    client = aioredis.Redis.from_url(redis_target.url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(redis_target.keys.channel)
    yield pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
    await client.aclose()


async def _next_wake_up(pubsub: aioredis.client.PubSub) -> str:
    """The next message on the channel (the subscription's confirmation read as None)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is not None:
            return str(message["data"])
    raise AssertionError("no wake-up published within 10 s")


async def test_queued_jobs_wake_other_nodes_but_not_their_own(
    nodes: list[RedisQueue], channel: aioredis.client.PubSub, task: Task
) -> None:
    first, second = nodes
    await first.announce([due_job(task, job_id="a")])
    mine = await _next_wake_up(channel)
    await second.announce([due_job(task, job_id="b")])
    theirs = await _next_wake_up(channel)

    kind, sender, _ = mine.split(" ")
    assert kind == "sync"
    assert theirs.split(" ")[1] != sender

    assert not wakes(mine, sender, None), "the sender's own worker was woken already"
    assert wakes(theirs, sender, None)
    assert wakes(theirs, sender, now() + timedelta(seconds=300))


async def test_jobs_due_later_wake_only_a_node_that_would_sleep_past_them(
    nodes: list[RedisQueue], channel: aioredis.client.PubSub, task: Task
) -> None:
    await nodes[1].announce([due_job(task, later(3600), job_id="later")])
    later_jobs = await _next_wake_up(channel)
    sender = "a node that queued nothing"

    assert not wakes(later_jobs, sender, now() + timedelta(seconds=60))
    assert wakes(later_jobs, sender, now() + timedelta(hours=2))
    assert wakes(later_jobs, sender, None), "a loop that is not asleep looks anyway"


def test_other_wake_ups_always_wake() -> None:
    asleep = now() + timedelta(seconds=60)
    for message in ("retry", "unpark", "sync", "sync  ", "sync other not-a-number"):
        assert wakes(message, "me", asleep), message
