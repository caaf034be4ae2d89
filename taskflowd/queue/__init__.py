"""Job queues behind one protocol; `open_queue` picks one from the settings."""

from __future__ import annotations

from taskflowd.config import Settings
from taskflowd.queue.base import JobQueue
from taskflowd.queue.sql import SqlQueue
from taskflowd.store.sql import SqlStore

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_queue(settings: Settings, store: SqlStore) -> JobQueue:
    """The queue for `settings.queue`: "database" shares the store's database; a Redis
    URL indexes jobs in Redis, with the store's database as their system of record."""
    if settings.queue == "database":
        return SqlQueue(store.db, settings.orgs.max_running_jobs)
    if settings.queue.startswith(REDIS_SCHEMES):
        from taskflowd.queue.redis import RedisQueue

        return RedisQueue(store.db, settings.queue, max_running_jobs=settings.orgs.max_running_jobs)
    raise ValueError(f'queue {settings.queue!r} is not supported: use "database" or redis://')
