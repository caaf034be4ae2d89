"""What the blocking client's resources share: running a coroutine on the client's loop,
and walking cursor pages as one iterator."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from taskflowd.client.models import Page

T = TypeVar("T")


class Call(Protocol):
    """Runs a coroutine on the client's loop and returns its result."""

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T: ...


def pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of the pages `fetch(cursor)` returns, from the first to the last."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
