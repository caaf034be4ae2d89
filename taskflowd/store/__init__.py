"""Durable records behind one protocol; `open_store(url)` picks the backend by URL."""

from __future__ import annotations

from taskflowd.store.base import Store
from taskflowd.store.db import open_database
from taskflowd.store.sql import SqlStore


def open_store(url: str) -> SqlStore:
    """A store for `sqlite:///…` or `postgresql://…`; nothing connects until `start()`."""
    return SqlStore(open_database(url))


__all__ = ["SqlStore", "Store", "open_store"]
