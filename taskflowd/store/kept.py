"""Values derived from repeated PostgreSQL reads, answered again on the event loop for a
short while (`Database.fetch_kept`).

Nothing tells a node of another node's commits without a round trip that costs as much
as the read, so a kept value is answered again for `KEPT_S` at most, counted from the
moment its read began: other nodes' commits show within that. This node's own
statements go through the same `Database`, which calls `changed()` when each one that
may write starts and when it ends (every transaction and `execute`, and each fetch but
those `db.reads_only` clears: `UPDATE … RETURNING` is fetched like a read): a value is
never answered again once such a statement of this node began after its read did, nor
kept when one began or ended while it was read. So a node reads its own writes, the
worker's and scheduler's included, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Iterator
from typing import Any

from taskflowd.joined import Joined

KEPT_S = 0.5
"""How long a kept value is answered again: another node's commit shows within this."""
MAX_CHARS = 8 << 20
"""Text of the kept values accounted for before they are all dropped."""

Key = tuple[str, tuple[Any, ...]]


class KeptReads:
    """Derived values by (SQL, arguments), each answered again until its deadline or
    this node's next statement. Used on the event loop only."""

    def __init__(self, kept_s: float = KEPT_S, max_chars: int = MAX_CHARS) -> None:
        self.kept_s = kept_s
        self.max_chars = max_chars
        self.generation = 0
        """Changes on every `changed()`: a read that saw it change keeps nothing."""
        self._values: dict[Key, tuple[float, Any]] = {}
        self._chars = 0
        self._reading: Joined[Any] = Joined()

    def changed(self) -> None:
        """A statement of this node begins or ends: forget every value, and let the next
        read of each key begin afresh rather than join one that began before."""
        self.generation += 1
        if self._values:
            self._values.clear()
            self._chars = 0
        self._reading.forget()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A statement of this node that may write runs inside: `changed()` as it begins
        and as it ends."""
        self.changed()
        try:
            yield
        finally:
            self.changed()

    def reading(self, key: Key) -> asyncio.Future[Any] | None:
        """The read of `key` under way, begun since this node's last statement began or
        ended and less than `kept_s` ago: a caller that misses may wait for it rather than
        read again (a flood of requests would otherwise read the page once per request in
        flight each time a statement drops it), and what it gets lags other nodes'
        commits no more than a kept value may (a slow read may have begun long before)."""
        return self._reading.under_way(key, self.kept_s)

    def begin(self, key: Key, read: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Run `read` of `key` from now (see `reading`)."""
        return self._reading.start(key, read)

    def get(self, key: Key) -> tuple[bool, Any]:
        """(True, value) when `key`'s value is kept and not past its deadline."""
        found = self._values.get(key)
        if found is None or found[0] <= time.monotonic():
            return False, None
        return True, found[1]

    def put(self, key: Key, began: float, generation: int, chars: int, value: Any) -> None:
        """Keep `value`, whose read began at `began` (monotonic) when the generation was
        `generation`: nothing when a statement began or ended since, or when it is too
        large."""
        if generation != self.generation or chars > self.max_chars:
            return
        if self._chars + chars > self.max_chars:
            self._values.clear()
            self._chars = 0
        self._values[key] = (began + self.kept_s, value)
        self._chars += chars
