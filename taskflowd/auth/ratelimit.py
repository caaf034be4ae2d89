"""Rate limiting behind one protocol; `GcraRateLimiter` keeps its state in this process.

GCRA (the generic cell rate algorithm) stores one number per key, the theoretical
arrival time: a limit of N per minute allows a burst of N, then one request every 60/N
seconds. `taskflowd.auth.ratelimit_redis` keeps the same state in Redis for a limit
that holds across the cluster.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Protocol

from taskflowd.store.errors import StoreUnavailable

WINDOW_S = 60.0
_EPSILON_S = 1e-9  # float sums of intervals must not refuse the N-th hit of a burst


class Decision(NamedTuple):
    """The answer for one hit: whether it may go ahead and what is left of the quota.

    `reset_s` is the time until the quota is whole again; `retry_after_s` the time until
    a refused hit would be allowed (0 when allowed). A named tuple: one is made for
    nearly every request, at half the cost of a frozen dataclass.
    """

    allowed: bool
    remaining: int
    reset_s: float
    retry_after_s: float


class RateLimiterUnavailable(StoreUnavailable):
    """A shared limiter cannot reach its state right now, so it cannot decide. Callers
    choose: refuse (login: fail closed) or let the request through (fail open)."""

    code = "rate_limiter_unavailable"


class RateLimiter(Protocol):
    async def hit(self, key: str, limit_per_min: int, cost: int = 1) -> Decision:
        """Count `cost` against `key`'s quota of `limit_per_min`; a refused hit costs nothing.
        Raises RateLimiterUnavailable when the limiter's shared state cannot be reached."""


class GcraRateLimiter:
    """In-process GCRA with bounded memory.

    Keys whose quota is whole again carry no information and are dropped; beyond
    `max_keys` the least recently used key is forgotten (it starts afresh).
    """

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._clock = clock
        self._tat: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tat)

    async def hit(self, key: str, limit_per_min: int, cost: int = 1) -> Decision:
        return self.hit_now(key, limit_per_min, cost)

    def hit_now(self, key: str, limit_per_min: int, cost: int = 1) -> Decision:
        """The synchronous core of `hit`; it never waits."""
        if limit_per_min < 1 or cost < 0:
            raise ValueError("limit_per_min must be >= 1 and cost >= 0")
        now = self._clock()
        interval = WINDOW_S / limit_per_min
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + interval * cost
        allow_at = new_tat - WINDOW_S
        if allow_at - now > _EPSILON_S:
            return Decision(
                allowed=False,
                remaining=_remaining(tat - now, interval),
                reset_s=tat - now,
                retry_after_s=allow_at - now,
            )
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        self._forget(now)
        return Decision(
            allowed=True,
            remaining=_remaining(new_tat - now, interval),
            reset_s=new_tat - now,
            retry_after_s=0.0,
        )

    def _forget(self, now: float, sweep: int = 8) -> None:
        """Drop a few idle keys from the old end, then the oldest ones beyond the cap."""
        for _ in range(sweep):
            key, tat = next(iter(self._tat.items()))
            if tat > now:
                break
            del self._tat[key]
            if not self._tat:
                return
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)


def _remaining(backlog_s: float, interval: float) -> int:
    """Hits still allowed now, given how far the theoretical arrival time is ahead."""
    return max(0, math.floor((WINDOW_S - backlog_s) / interval + 1e-9))
