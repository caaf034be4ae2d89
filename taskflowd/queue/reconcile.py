"""The reconciler: rebuilds the Redis index of queued jobs from the system of record.

Redis may lose its data (a restart without persistence, a failover, FLUSHALL) and a node
may die between committing a job and indexing it. Neither loses a job: the database
knows every queued execution, and the reconciler indexes each one Redis does not hold.

- An epoch key marks an index that was built from the database. When it is missing,
  Redis lost its data (or never had any): one node rebuilds the whole index.
- Every few seconds one node of the cluster indexes the claimable jobs due soon that
  Redis lacks: the earliest few thousand, so a large backlog costs no more than a small
  one, and a missing job is found once the jobs due before it have run.
- Every few minutes, and after a node failed to reflect a change in Redis, a full pass
  covers every queued job, drops entries whose jobs are no longer queued and counts each
  org's running jobs again.

A job is added only after the index was seen without it and the database still says it
is queued, and then only if the index still lacks it, so a pass never undoes a claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskflowd.background import Outage, wait_event
from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.queue.redis_claims import RecordClaims
from taskflowd.queue.redis_index import Placement, RedisIndex, to_us
from taskflowd.store.db import Database
from taskflowd.store.errors import StoreError

log = logging.getLogger("taskflowd.queue.reconcile")

_QUEUED = f"status IN ('{ExecutionStatus.PENDING.value}', '{ExecutionStatus.RETRYING.value}')"
_PAGE = (
    f"SELECT e.id, e.task_id, e.org_id, e.run_at FROM job_executions e WHERE e.{_QUEUED} "
    "AND e.completed_at IS NULL"
    "{after}{horizon} ORDER BY e.run_at, e.id LIMIT {limit}"
)
_AFTER = " AND e.run_at >= $1 AND (e.run_at > $1 OR e.id > $2)"
# The window pass looks at claimable jobs only: a paused task's jobs, however long
# overdue, must not fill the window and hide a missing job behind them.
_CLAIMABLE = (
    " AND e.run_at <= ${n} AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id "
    f"AND t.status <> '{TaskStatus.PAUSED.value}')"
)
_CHUNK = 2000
_DEAD_LETTER_KEPT = 10_000
_REBUILD_LOCK_MS = 300_000
_TICK_S = 1.0


@dataclass(frozen=True, slots=True)
class Reconciled:
    added: int
    dropped: int


class Reconciler:
    def __init__(
        self,
        db: Database,
        index: RedisIndex,
        records: RecordClaims,
        *,
        interval_s: float = 5.0,
        full_interval_s: float = 600.0,
        window_s: float = 60.0,
        window_limit: int = 5_000,
    ) -> None:
        self.db = db
        self.index = index
        self.records = records
        self.interval_s = interval_s
        self.full_interval_s = full_interval_s
        self.window_s = window_s
        self.window_limit = window_limit
        self._token = uuid.uuid4().hex
        self._kick = asyncio.Event()
        self._dirty = False
        self.rebuilds = 0

    def kick(self) -> None:
        """Look at the index now rather than at the next tick (e.g. the epoch vanished)."""
        self._kick.set()

    def mark_dirty(self) -> None:
        """A change committed to the database may be missing from Redis: the next tick
        that reaches Redis runs a full pass."""
        self._dirty = True
        self._kick.set()

    # --- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        """Reconcile forever: survives Redis and database outages, logging them once."""
        started = time.monotonic()
        next_window, next_full = started + self.interval_s, started + self.full_interval_s
        outage = Outage(
            log, "cannot reconcile the Redis queue now: %s", "reconciling the Redis queue again"
        )
        while True:
            await wait_event(self._kick, _TICK_S)
            self._kick.clear()
            try:
                if await self.rebuild_if_lost():
                    pass
                elif self._dirty:
                    self._dirty = False
                    await self.reconcile(full=True)
                elif time.monotonic() >= next_full:
                    next_full = time.monotonic() + self.full_interval_s
                    if await self._turn("full", self.full_interval_s):
                        await self.reconcile(full=True)
                elif time.monotonic() >= next_window:
                    next_window = time.monotonic() + self.interval_s
                    if await self._turn("window", self.interval_s):
                        await self.reconcile(full=False)
            except StoreError as exc:
                self._dirty = True
                outage.failed(exc)
                continue
            outage.succeeded()

    async def _turn(self, name: str, interval_s: float) -> bool:
        """Whether this node runs the cluster's pass of this interval."""
        return await self.index.try_lock(name, self._token, max(1, int(interval_s * 1000)))

    async def rebuild_if_lost(self) -> bool:
        """Rebuild the whole index when its epoch is missing; True when this node did."""
        if await self.index.epoch() is not None:
            return False
        if not await self.index.try_lock("rebuild", self._token, _REBUILD_LOCK_MS):
            return False  # another node is rebuilding
        try:
            log.info("the Redis queue index is empty or lost: rebuilding it from the database")
            done = await self.reconcile(full=True)
            await self._restore_running()
            await self._restore_dead_letter()
            await self.index.set_epoch(uuid.uuid4().hex)
        finally:
            with contextlib.suppress(StoreError):
                await self.index.unlock("rebuild", self._token)
        self.rebuilds += 1
        level = logging.WARNING if done.added else logging.INFO
        log.log(level, "rebuilt the Redis queue index: %d queued jobs indexed again", done.added)
        return True

    # --- passes ------------------------------------------------------------------------
    async def reconcile(self, *, full: bool = True) -> Reconciled:
        """Index every queued job Redis lacks (`full`), or those due within the window;
        a full pass also drops entries of jobs no longer queued and recounts running jobs."""
        now = utcnow()
        horizon = None if full else now + timedelta(seconds=self.window_s)
        limit = None if full else self.window_limit
        added = 0
        after: tuple[datetime, str] | None = None
        seen = 0
        while limit is None or seen < limit:
            size = _CHUNK if limit is None else min(_CHUNK, limit - seen)
            page = await self._queued_page(after, horizon, size)
            if not page:
                break
            seen += len(page)
            added += await self._add_missing([(r["id"], r["task_id"], r["org_id"]) for r in page])
            last = page[-1]
            after = (self.db.decode_time(last["run_at"]), last["id"])
            if len(page) < size:
                break
        dropped = 0
        if full:
            dropped = await self._drop_stale()
            await self.index.recount()
        if added or dropped:
            log.warning(
                "reconciled the Redis queue: %d queued jobs indexed, %d stale entries dropped",
                added,
                dropped,
            )
        return Reconciled(added, dropped)

    async def _queued_page(
        self, after: tuple[datetime, str] | None, horizon: datetime | None, size: int
    ) -> list[Any]:
        args: list[Any] = [*after] if after is not None else []
        horizon_sql = ""
        if horizon is not None:
            args.append(horizon)
            horizon_sql = _CLAIMABLE.format(n=len(args))
        sql = _PAGE.format(
            after=_AFTER if after is not None else "", horizon=horizon_sql, limit=size
        )
        return list(await self.db.fetch(sql, *args))

    async def _add_missing(self, jobs: list[tuple[str, str, str]]) -> int:
        now = utcnow()
        absent = await self.index.absent(to_us(now), jobs)
        if not absent:
            return 0
        wanted = [p for p in await self.records.placements(absent, now) if p.state in "QP"]
        # N: add only if the index still lacks it (a claim may have raced this pass).
        missing = [
            Placement(p.execution_id, "N", p.score_us, p.priority, p.task_id, p.org_id)
            if p.state == "Q"
            else p
            for p in wanted
        ]
        return await self.index.sync(to_us(now), missing)

    async def _drop_stale(self) -> int:
        dropped = 0
        for key in await self.index.queued_keys():
            cursor = 0
            while True:
                cursor, entries = await self.index.scan(key, cursor, _CHUNK)
                if entries:
                    queued = await self._still_queued([i for i, _ in entries])
                    stale = [(key, i, s) for i, s in entries if i not in queued]
                    dropped += await self.index.forget_stale(to_us(utcnow()), stale)
                if cursor == 0:
                    break
        return dropped

    async def _still_queued(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(f"${i}" for i in range(1, len(chunk) + 1))
            rows = await self.db.fetch(
                f"SELECT id FROM job_executions WHERE id IN ({marks}) AND {_QUEUED}", *chunk
            )
            found.update(r["id"] for r in rows)
        return found

    async def _restore_running(self) -> None:
        """Index the running jobs as active, so each org's count of running jobs (which
        its cap is checked against) holds them again."""
        rows = await self.db.fetch(
            "SELECT id FROM job_executions WHERE status = $1 AND completed_at IS NULL",
            ExecutionStatus.PROCESSING.value,
        )
        ids = [r["id"] for r in rows]
        for start in range(0, len(ids), _CHUNK):
            now = utcnow()
            placements = await self.records.placements(ids[start : start + _CHUNK], now)
            await self.index.sync(to_us(now), [p for p in placements if p.state == "A"])

    async def _restore_dead_letter(self) -> None:
        rows = await self.db.fetch(
            "SELECT execution_id, created_at FROM dead_letter_jobs "
            f"ORDER BY created_at DESC LIMIT {_DEAD_LETTER_KEPT}"
        )
        placements = [
            Placement(r["execution_id"], "F", to_us(self.db.decode_time(r["created_at"])))
            for r in rows
        ]
        for start in range(0, len(placements), _CHUNK):
            await self.index.sync(to_us(utcnow()), placements[start : start + _CHUNK])
