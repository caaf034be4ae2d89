"""The Redis side of the Redis queue: the index of queued and running jobs, kept by Lua
scripts so that every multi-step change is atomic.

Redis holds only a rebuildable copy of what the database says is queued: which jobs are
waiting (due; one zset per org, served round-robin), delayed (due later), active (claimed,
with the lease deadline; counted per org against the org's cap) or parked (their task is
paused). Every key carries the hash tag `{<queue>}`, so one queue's keys live in one Redis
Cluster slot. Redis errors become `StoreUnavailable` here and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from taskflowd.store.errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("taskflowd.queue.redis")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
PRIORITY_SPAN = 1 << 42
"""Waiting scores are (10 - priority) · 2^42 + due time in ms (see redis_prelude.lua)."""

_PROMOTE_AT_LEAST = 1000
_SCRIPTS = ("acquire", "settle", "sync", "unpark", "forget", "absent", "heads", "recount")


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch: exact in a Redis score (a double) until year 2255."""
    return (moment - _EPOCH) // _MICROSECOND


def from_us(us: int) -> datetime:
    return _EPOCH + us * _MICROSECOND


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names of one queue: `<prefix>{<queue>}:<part>`, e.g. `taskflow:{tasks}:waiting`."""

    prefix: str = "taskflow:"
    queue: str = "tasks"

    def key(self, part: str) -> str:
        return f"{self.prefix}{{{self.queue}}}:{part}"

    @property
    def fixed(self) -> list[str]:
        """The keys every script gets as KEYS[1..12], in the order the prelude names them."""
        parts = ("waiting", "delayed", "active", "jobs", "paused", "epoch", "completed")
        last = ("failed", "dead-letter", "ready", "running", "caps")
        return [*(self.key(p) for p in parts), *(self.key(p) for p in last)]

    def waiting(self, org_id: str) -> str:
        """The zset of an org's waiting jobs ("" names the single zset of earlier releases)."""
        return self.key(f"waiting:{org_id}" if org_id else "waiting")

    def parked(self, task_id: str) -> str:
        return self.key(f"paused:{task_id}")

    @property
    def channel(self) -> str:
        return self.key("wake")

    def lock(self, name: str) -> str:
        return self.key(f"lock:{name}")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one job belongs in the index (see `redis_sync.lua` for the states)."""

    execution_id: str
    state: str
    score_us: int = 0
    priority: int | None = None
    task_id: str = ""
    org_id: str = ""


@dataclass(frozen=True, slots=True)
class Popped:
    epoch_present: bool
    paused_tasks: int
    ids: list[str]
    due_us: list[int]
    """Each popped job's due time (µs, to the millisecond): where `requeue` puts it back."""


def _packed(rows: Iterable[Iterable[Any]]) -> str:
    """Rows as one script argument (see `unpack_rows` in redis_prelude.lua)."""
    return "".join(f"{field}\x1f" for row in rows for field in row)


def _acquire_args(limit: int, deadline_us: int, default_cap: int) -> tuple[int, ...]:
    """The `acquire` script's arguments after the channel and time."""
    return (limit, deadline_us, max(_PROMOTE_AT_LEAST, 4 * limit), default_cap)


def _popped(out: Sequence[Any]) -> Popped:
    """The `acquire` script's reply: epoch present, paused tasks, then (id, score) pairs."""
    ids, scores = out[2::2], out[3::2]
    due_us = [int(float(s)) % PRIORITY_SPAN * 1000 for s in scores]
    return Popped(bool(out[0]), int(out[1]), [str(i) for i in ids], due_us)


def _unknown_script(reply: Any) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(reply, NoScriptError)


def _load(name: str) -> str:
    return resources.files("taskflowd.queue").joinpath(f"redis_{name}.lua").read_text()


@contextlib.contextmanager
def _translated() -> Any:
    from redis.exceptions import ConnectionError, RedisError, TimeoutError

    try:
        yield
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise StoreUnavailable(f"redis unreachable: {exc}") from exc
    except RedisError as exc:
        raise StoreError(f"redis: {exc}") from exc


class RedisIndex:
    """Typed calls of the queue's Lua scripts and the few plain commands it needs."""

    def __init__(self, url: str, keys: RedisKeys | None = None) -> None:
        self.url = url
        self.keys = keys or RedisKeys()
        self._fixed = self.keys.fixed
        self._client: Redis | None = None
        self._scripts: dict[str, Any] = {}

    def _open(self) -> Redis:
        """The client, created on first use: the queue works before `connect()` too, as
        the SQL queue works before `start()`."""
        if self._client is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff

            # A connection broken by a Redis restart is retried on a fresh one. A retried
            # pop whose first reply was lost leaves those jobs in the active set, where
            # `reap_expired` finds them unclaimed and queues them again. Timeouts are short:
            # lease renewals wait on these calls, and an unreachable Redis must fail them
            # within seconds, well inside a lease, rather than stall the worker.
            client = redis.asyncio.Redis.from_url(
                self.url,
                decode_responses=True,
                socket_timeout=3,
                socket_connect_timeout=2,
                health_check_interval=15,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 1),
            )
            prelude = _load("prelude")
            self._scripts = {n: client.register_script(prelude + _load(n)) for n in _SCRIPTS}
            self._client = client
        return self._client

    async def connect(self) -> None:
        """Check that Redis answers (StoreUnavailable when it does not)."""
        with _translated():
            await self._open().ping()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> Redis:
        return self._open()

    async def _run(
        self, name: str, now_us: int, args: Iterable[Any], extra_keys: Sequence[str] = ()
    ) -> Any:
        self._open()
        script = self._scripts[name]
        with _translated():
            return await script(
                keys=[*self._fixed, *extra_keys], args=[self.keys.channel, now_us, *args]
            )

    # --- scripts -----------------------------------------------------------------
    async def acquire(
        self, now_us: int, limit: int, deadline_us: int, default_cap: int = 0
    ) -> Popped:
        """Pop up to `limit` due jobs round-robin across orgs, none of an org beyond its
        cap of running jobs (its override set by `set_caps`, else `default_cap`; 0: none)."""
        out = await self._run("acquire", now_us, _acquire_args(limit, deadline_us, default_cap))
        return _popped(out)

    async def settle(self, now_us: int, rows: Sequence[tuple[str, str, int]]) -> bool:
        """Rows of (execution id, kind C/R/D/X, retry time in µs); returns whether jobs
        wait in the index (False when there was nothing to settle)."""
        if not rows:
            return False
        return bool(await self._run("settle", now_us, (_packed(rows),)))

    async def sync(self, now_us: int, placements: Sequence[Placement], sender: str = "") -> int:
        """Apply placements; returns how many jobs were (re)queued. The wake-up sent for
        them names `sender` (see `wake_ups`)."""
        if not placements:
            return 0
        args, extra = self._sync_args(placements, sender)
        return int(await self._run("sync", now_us, args, extra))

    async def sync_and_acquire(
        self,
        now_us: int,
        placements: Sequence[Placement],
        sender: str,
        limit: int,
        deadline_us: int,
        default_cap: int = 0,
    ) -> Popped:
        """`sync` then `acquire`, sent together: one round trip instead of two (the
        scripts run one after the other, as the two calls would)."""
        client = self._open()
        sync_args, extra = self._sync_args(placements, sender)
        calls = (
            ("sync", [*self._fixed, *extra], sync_args),
            ("acquire", self._fixed, _acquire_args(limit, deadline_us, default_cap)),
        )
        with _translated():
            async with client.pipeline(transaction=False) as pipe:
                for name, keys, args in calls:
                    sha = self._scripts[name].sha
                    pipe.evalsha(sha, len(keys), *keys, self.keys.channel, now_us, *args)
                synced, out = await pipe.execute(raise_on_error=False)
        if _unknown_script(synced):
            # Redis lost its scripts (a restart): the plain calls load them again.
            await self.sync(now_us, placements, sender)
            return await self.acquire(now_us, limit, deadline_us, default_cap)
        if _unknown_script(out):
            return await self.acquire(now_us, limit, deadline_us, default_cap)
        for reply in (synced, out):
            if isinstance(reply, Exception):
                with _translated():
                    raise reply
        return _popped(out)

    def _sync_args(
        self, placements: Sequence[Placement], sender: str
    ) -> tuple[tuple[Any, ...], list[str]]:
        """The `sync` script's arguments after the channel and time, and its extra keys."""
        parking: dict[str, int] = {}
        rows: list[tuple[Any, ...]] = []
        for p in placements:
            index = 0
            if p.task_id and p.state in ("P", "N"):
                index = parking.setdefault(p.task_id, len(self._fixed) + len(parking) + 1)
            priority = "" if p.priority is None else p.priority
            rows.append((p.execution_id, p.state, priority, p.score_us, p.task_id, index, p.org_id))
        extra = [self.keys.parked(t) for t in parking]
        return (_packed(rows), sender), extra

    async def unpark(self, now_us: int, task_ids: Sequence[str]) -> int:
        if not task_ids:
            return 0
        extra = [self.keys.parked(t) for t in task_ids]
        return int(await self._run("unpark", now_us, task_ids, extra))

    async def forget_stale(self, now_us: int, entries: Sequence[tuple[str, str, str]]) -> int:
        """Drop (zset key from `queued_keys`, id, score read) entries if unchanged."""
        if not entries:
            return 0
        index: dict[str, int] = {}
        for key, _, _ in entries:
            index.setdefault(key, len(self._fixed) + len(index) + 1)
        args = [v for key, member, score in entries for v in (index[key], member, score)]
        return int(await self._run("forget", now_us, args, list(index)))

    async def set_caps(self, caps: dict[str, int]) -> None:
        """Replace the orgs' overrides of their cap on running jobs."""
        with _translated():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self._fixed[11])
                if caps:
                    pipe.hset(self._fixed[11], items=[v for pair in caps.items() for v in pair])
                await pipe.execute()

    async def recount(self) -> int:
        """Count each org's active jobs again (correcting any drift); returns the total."""
        return int(await self._run("recount", 0, ()))

    async def running(self) -> dict[str, int]:
        """Active jobs per org, as the index counts them."""
        with _translated():
            found = await self.client.hgetall(self._fixed[10])
        return {str(k): int(v) for k, v in found.items()}

    # --- plain commands ---------------------------------------------------------------
    async def paused_tasks(self) -> list[str]:
        with _translated():
            members = await self.client.smembers(self._fixed[4])
        return sorted(str(m) for m in members)

    async def absent(self, now_us: int, jobs: Sequence[tuple[str, str, str]]) -> list[str]:
        """Those of the (execution id, task id, org id) jobs the index holds nowhere."""
        if not jobs:
            return []
        parking: dict[str, int] = {}
        rows = []
        for execution_id, task_id, org_id in jobs:
            index = parking.setdefault(task_id, len(self._fixed) + len(parking) + 1)
            rows.append((execution_id, index, org_id))
        extra = [self.keys.parked(t) for t in parking]
        found = await self._run("absent", now_us, (_packed(rows),), extra)
        return [str(i) for i in found]

    async def overdue(self, now_us: int, limit: int) -> list[str]:
        """Active entries whose deadline passed: claims that may never have reached the
        database, or outcomes whose reflection here was lost."""
        with _translated():
            found = await self.client.zrangebyscore(self._fixed[2], "-inf", now_us, 0, limit)
        return [str(i) for i in found]

    async def extend(self, deadlines: dict[str, int]) -> None:
        """Move the deadlines of active entries that are still there."""
        if deadlines:
            with _translated():
                await self.client.zadd(self._fixed[2], deadlines, xx=True)

    async def heads(self) -> tuple[int | None, int | None]:
        """(score of the first waiting job, µs of the first delayed job); None when empty."""
        waiting, delayed = await self._run("heads", 0, ())
        return (
            None if waiting is None else int(waiting),
            None if delayed is None else int(float(delayed)),
        )

    async def epoch(self) -> str | None:
        with _translated():
            value = await self.client.get(self._fixed[5])
        return None if value is None else str(value)

    async def set_epoch(self, token: str) -> None:
        with _translated():
            await self.client.set(self._fixed[5], token)

    async def try_lock(self, name: str, token: str, ttl_ms: int) -> bool:
        with _translated():
            return bool(await self.client.set(self.keys.lock(name), token, nx=True, px=ttl_ms))

    async def unlock(self, name: str, token: str) -> None:
        with _translated():
            key = self.keys.lock(name)
            if await self.client.get(key) == token:
                await self.client.delete(key)

    async def queued_keys(self) -> list[str]:
        """The zsets of queued jobs: every org's waiting jobs (and the legacy zset), and
        the delayed jobs."""
        with _translated():
            orgs = await self.client.zrange(self._fixed[9], 0, -1)
        return [self._fixed[0], *(self.keys.waiting(str(o)) for o in orgs if o), self._fixed[1]]

    async def scan(self, key: str, cursor: int, count: int) -> tuple[int, list[tuple[str, str]]]:
        """One ZSCAN step over a key of `queued_keys`: (next cursor, [(id, raw score)])."""
        with _translated():
            following, found = await self.client.zscan(
                key, cursor, count=count, score_cast_func=str
            )
        return int(following), [(str(m), str(s)) for m, s in found]

    async def publish_wake(self) -> None:
        with _translated():
            await self.client.publish(self.keys.channel, "wake")

    async def wake_ups(self, on_wake: Callable[[str], None]) -> None:
        """Call `on_wake` with each wake-up published by any node ("" once subscribed),
        until cancelled or the connection fails (StoreUnavailable). A wake-up is a word,
        or "sync <sender> <earliest score in µs>" for jobs queued by `sync`."""
        async with self._subscription() as pubsub:
            on_wake("")  # wake-ups sent while not subscribed are lost: look once now
            while True:
                with _translated():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                if message is not None:
                    data = message["data"]
                    on_wake(data.decode() if isinstance(data, bytes) else str(data))

    @contextlib.asynccontextmanager
    async def _subscription(self) -> AsyncIterator[Any]:
        pubsub = self.client.pubsub()
        try:
            with _translated():
                await pubsub.subscribe(self.keys.channel)
            yield pubsub
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call,unused-ignore]
