"""A cluster-wide `RateLimiter`: GCRA with its state in Redis, one Lua script per hit.

Every node shares each key's theoretical arrival time, so a limit of N per minute holds
across the cluster, not per node. The script reads Redis's own clock (nodes' clocks may
disagree) and gives each key a TTL of its backlog, so idle keys vanish by themselves.
Keys live under `taskflow:{rl}:` (one Redis Cluster slot); the caller's key is hashed
after its scope (`login:…`, `user:…`) so no address or email is stored in Redis.

When Redis does not answer, `hit` raises `RateLimiterUnavailable` at once for
`cooldown_s` rather than waiting on every request, and logs the outage once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskflowd.auth.ratelimit import WINDOW_S, Decision, RateLimiterUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("taskflowd.ratelimit")

KEY_PREFIX = "taskflow:{rl}:"
_US = 1_000_000
_TOLERANCE_US = 1000  # float rounding of a burst's sum must not refuse its N-th hit

# KEYS[1]: the key. ARGV: interval (µs per unit), cost, window (µs), tolerance (µs).
# Returns {allowed (1/0), backlog after the decision (µs), retry after (µs)} as strings:
# Redis would truncate Lua numbers to integers.
GCRA_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local tolerance = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + interval * cost
local wait = new_tat - window - now
if wait > tolerance then
  return {'0', string.format('%.17g', tat - now), string.format('%.17g', wait)}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl_ms)
return {'1', string.format('%.17g', new_tat - now), '0'}
"""


def redis_client(url: str, timeout_s: float, retries: int = 1) -> Redis:
    """A redis.asyncio client that fails fast: short timeouts and `retries` immediate
    retries (enough to replace a pooled connection that a Redis restart closed)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries),
    )
    return client


def storage_key(key: str, prefix: str = KEY_PREFIX) -> str:
    """`scope:anything` → `prefix` + `scope:` + a digest of the rest."""
    scope, _, rest = key.partition(":")
    digest = hashlib.blake2b(rest.encode(), digest_size=16).hexdigest()
    return f"{prefix}{scope}:{digest}"


class RedisRateLimiter:
    """See the module docstring. `close()` releases the connections."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = KEY_PREFIX,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._script = client.register_script(GCRA_LUA)
        self._down_until: float | None = None

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 1.0, **kwargs: Any) -> RedisRateLimiter:
        return cls(redis_client(url, timeout_s), **kwargs)

    async def hit(self, key: str, limit_per_min: int, cost: int = 1) -> Decision:
        if limit_per_min < 1 or cost < 0:
            raise ValueError("limit_per_min must be >= 1 and cost >= 0")
        if self._down_until is not None and self._clock() < self._down_until:
            raise RateLimiterUnavailable("the shared rate limiter (Redis) is unreachable")
        interval_us = WINDOW_S * _US / limit_per_min
        args = (repr(interval_us), cost, int(WINDOW_S * _US), _TOLERANCE_US)
        try:
            reply = await self._script(keys=[storage_key(key, self._prefix)], args=args)
        except Exception as exc:
            self._went_down(exc)
            raise RateLimiterUnavailable("the shared rate limiter (Redis) is unreachable") from exc
        self._came_back()
        allowed, backlog_us, wait_us = (float(part) for part in reply)
        backlog_us = max(0.0, backlog_us)
        # As many unit hits as the script would still allow now, with its tolerance.
        headroom_us = WINDOW_S * _US + _TOLERANCE_US - backlog_us
        return Decision(
            allowed=bool(allowed),
            remaining=max(0, math.floor(headroom_us / interval_us)),
            reset_s=backlog_us / _US,
            retry_after_s=max(0.0, wait_us / _US),
        )

    def _went_down(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "Redis for rate limits is unreachable (%s: %s); logins are refused and "
                "API limits are not enforced until it answers",
                type(exc).__name__,
                exc,
            )
        self._down_until = self._clock() + self._cooldown_s

    def _came_back(self) -> None:
        if self._down_until is not None:
            log.info("Redis for rate limits answers again")
            self._down_until = None

    async def ping(self) -> None:
        """A readiness probe: raises RateLimiterUnavailable when Redis does not answer."""
        try:
            await self._client.ping()
        except Exception as exc:
            raise RateLimiterUnavailable(f"redis unreachable: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()
