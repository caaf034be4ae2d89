"""Durable records behind one protocol; `open_store(url)` picks the backend by URL."""

from __future__ import annotations

from taskflowd.store.base import Store
from taskflowd.store.codec import Keyring
from taskflowd.store.db import open_database
from taskflowd.store.sql import SqlStore


def open_store(url: str, keyring: Keyring | None = None) -> SqlStore:
    """A store for `sqlite:///…` or `postgresql://…` (payloads, results and errors sealed
    with `keyring` when given); nothing connects until `start()`."""
    return SqlStore(open_database(url, keyring))


__all__ = ["SqlStore", "Store", "open_store"]
