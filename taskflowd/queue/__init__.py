"""Job queues behind one protocol; `open_queue` picks one from the settings."""

from __future__ import annotations

from taskflowd.config import Settings
from taskflowd.queue.base import JobQueue
from taskflowd.queue.sql import SqlQueue
from taskflowd.store.sql import SqlStore


def open_queue(settings: Settings, store: SqlStore) -> JobQueue:
    """The queue for `settings.queue`: "database" shares the store's database."""
    if settings.queue == "database":
        return SqlQueue(store.db)
    raise ValueError(f'queue {settings.queue!r} is not supported yet: use "database"')
