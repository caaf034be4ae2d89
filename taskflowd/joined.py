"""Calls under way by key, which later callers join rather than make again.

A flood of requests that miss a cache at the same moment would each read the same
row; instead the first starts the call and the others wait for its answer. A caller
joins only a call begun less than a given time ago, so what it gets is no older than
its cache would allow. Used on the event loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Joined(Generic[T]):
    """The call under way for each key and when it began."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, tuple[float, asyncio.Future[T]]] = {}

    def under_way(self, key: Hashable, within_s: float) -> asyncio.Future[T] | None:
        """The call for `key` begun less than `within_s` ago, if any."""
        found = self._calls.get(key)
        if found is None or found[0] + within_s <= time.monotonic():
            return None
        return found[1]

    def start(self, key: Hashable, call: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run `call` for `key` from now; await it through `asyncio.shield`, so that one
        caller's cancellation does not reach the others."""
        future = asyncio.ensure_future(call)
        self._calls[key] = (time.monotonic(), future)

        def done(_: asyncio.Future[T]) -> None:
            found = self._calls.get(key)
            if found is not None and found[1] is future:
                del self._calls[key]
            if not future.cancelled():
                future.exception()  # retrieved here: every caller may have gone meanwhile

        future.add_done_callback(done)
        return future

    def forget(self) -> None:
        """Let the next caller of every key start afresh (what is under way finishes)."""
        self._calls.clear()
