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
import time
from typing import Any

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
        self._reading: dict[Key, tuple[float, asyncio.Future[Any]]] = {}

    def changed(self) -> None:
        """A statement of this node begins or ends: forget every value, and let the next
        read of each key begin afresh rather than join one that began before."""
        self.generation += 1
        if self._values:
            self._values.clear()
            self._chars = 0
        self._reading.clear()

    def reading(self, key: Key) -> asyncio.Future[Any] | None:
        """The read of `key` under way, begun since this node's last statement began or
        ended and less than `kept_s` ago: a caller that misses may wait for it rather than
        read again (a flood of requests would otherwise read the page once per request in
        flight each time a statement drops it), and what it gets lags other nodes'
        commits no more than a kept value may (a slow read may have begun long before)."""
        found = self._reading.get(key)
        if found is None or found[0] + self.kept_s <= time.monotonic():
            return None
        return found[1]

    def begin(self, key: Key, read: asyncio.Future[Any]) -> None:
        """`read` of `key` is under way from now (see `reading`)."""
        self._reading[key] = (time.monotonic(), read)

        def done(_: asyncio.Future[Any]) -> None:
            found = self._reading.get(key)
            if found is not None and found[1] is read:
                del self._reading[key]
            if not read.cancelled():
                read.exception()  # retrieved here: every waiter may have gone meanwhile

        read.add_done_callback(done)

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
