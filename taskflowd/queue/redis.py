"""The job queue on Redis, with the database as the system of record.

Every record write and every fencing decision is the SQL queue's (`SqlQueue`, composed
here): executions are committed before they become visible in Redis, a claim is the
conditional UPDATE that moves a row to PROCESSING with a new fencing token, and an
outcome is applied only with the claim's fence. Redis holds an index of what is queued
(`redis_index`), so workers pop due jobs highest priority first without scanning the
database, block on a Redis wake-up instead of polling, and sleep until the next delayed
job. The reconciler rebuilds the index whenever Redis lost it, so no accepted job is lost.

A change committed to the database is then reflected in Redis; if Redis cannot be
reached at that moment the change stands (the job was accepted) and the reconciler
indexes it once Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from taskflowd.background import Outage, Supervisor, wait_event
from taskflowd.domain.entities import Execution, Task, utcnow
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.queue.base import (
    FinalHook,
    LeaseStatus,
    Outcome,
    OutcomeKind,
    Reaped,
    ReopenHook,
    Reservation,
    TickBatch,
)
from taskflowd.queue.reconcile import Reconciler
from taskflowd.queue.redis_claims import ClaimResult, RecordClaims
from taskflowd.queue.redis_index import (
    PRIORITY_SPAN,
    Placement,
    Popped,
    RedisIndex,
    RedisKeys,
    from_us,
    to_us,
)
from taskflowd.queue.sql import SqlQueue, after_claim, claim_now, wakes_for
from taskflowd.store.db import Database
from taskflowd.store.errors import StoreError, StoreUnavailable
from taskflowd.store.outbox import Outbox

log = logging.getLogger("taskflowd.queue.redis")

_OVERDUE_BATCH = 500
_POPPED_KEEP_S = 0.1
"""How long jobs popped ahead of a claim (`RedisQueue.acquire`) wait here for it: a claim
that comes later puts them back to waiting first, and so does a quiet moment, so that
other nodes may take them and newly queued jobs of a higher priority go before them."""
_UNPARK_CHECK_S = 1.0
_RESUBSCRIBE_S = 1.0
_KIND = {
    OutcomeKind.COMPLETED: "C",
    OutcomeKind.RETRY: "R",
    OutcomeKind.DEAD: "D",
    OutcomeKind.CANCELLED: "X",
}


def wakes(message: str, sender: str, sleeps_until: datetime | None) -> bool:
    """Whether a wake-up published on the queue's channel (see `RedisIndex.wake_ups`)
    needs the claim loop of the queue named `sender`, asleep until `sleeps_until` (None:
    not asleep). Jobs queued by that queue's own sync woke its loop already (or were not
    due before its next look); jobs another node queued wake it unless it will look again
    before the earliest is due. Anything else (retries, unparked jobs, the reconciler's
    repairs, wake-ups of an earlier release) wakes it."""
    kind, _, rest = message.partition(" ")
    origin, _, earliest = rest.partition(" ")
    if kind != "sync" or not origin:
        return True
    if origin == sender:
        return False
    try:
        due = from_us(int(earliest))
    except ValueError:
        return True
    return wakes_for(due, sleeps_until)


def queued_elsewhere(message: str, sender: str) -> bool:
    """Whether a wake-up (see `wakes`) tells of jobs queued by someone other than the
    queue named `sender`."""
    if not message:
        return False
    kind, _, rest = message.partition(" ")
    return kind != "sync" or rest.partition(" ")[0] != sender


def _queued(e: Execution) -> Placement:
    return Placement(e.id, "Q", to_us(e.run_at), e.priority, e.task_id, e.org_id)


class RedisQueue:
    """`JobQueue` over Redis (see `taskflowd.queue.base` and this module's docstring)."""

    def __init__(
        self,
        db: Database,
        url: str,
        *,
        keys: RedisKeys | None = None,
        reconcile_interval_s: float = 5.0,
        full_reconcile_interval_s: float = 600.0,
        max_running_jobs: int = 0,
        caps_interval_s: float = 5.0,
    ) -> None:
        """`max_running_jobs`: the default cap of each org's running jobs (0: none); the
        orgs' overrides are read from the database every `caps_interval_s`."""
        self.db = db
        # Work added is announced through Redis (`RedisIndex.wake_ups`), not PostgreSQL.
        self.sql = SqlQueue(db, max_running_jobs, notifies=False)
        self.max_running_jobs = max_running_jobs
        self.caps_interval_s = caps_interval_s
        self.index = RedisIndex(url, keys)
        self.records = RecordClaims(db)
        self.reconciler = Reconciler(
            db,
            self.index,
            self.records,
            interval_s=reconcile_interval_s,
            full_interval_s=full_reconcile_interval_s,
        )
        self._wake = asyncio.Event()
        self._sender = uuid.uuid4().hex
        """Names this queue in the wake-ups its changes publish (it skips its own)."""
        self._sleeps_until: datetime | None = None
        self._on_due: Callable[[], asyncio.Future[Any] | None] | None = None
        self._reserve: Callable[[], Reservation | None] | None = None
        self._claims: set[asyncio.Future[list[Execution]]] = set()
        self._supervisor = Supervisor(lambda name, exc: None)
        self._unpark_checked = 0.0
        self._popped: list[tuple[str, int]] = []
        """Jobs popped from the index for the next claim (id, due µs), not claimed yet."""
        self._popped_at = 0.0
        self._popped_added = asyncio.Event()
        self._backlog = False
        """Whether the last pop found all it asked for: more may wait, worth popping ahead."""
        self._index_outage = Outage(
            log,
            "Redis queue index not updated (%s); the reconciler will repair it",
            "Redis queue index updated again",
        )

    # --- lifecycle and wake-ups ------------------------------------------------------
    async def start(self) -> None:
        """Start even while Redis is unreachable (a node restarted during an outage keeps
        serving reads and accepting jobs): the reconciler builds the index once it answers."""
        await self.sql.start()
        try:
            await self.index.connect()
            await self.reconciler.rebuild_if_lost()
            await self.refresh_caps()
        except StoreUnavailable as exc:
            log.warning("starting without Redis (%s); the queue index follows once it answers", exc)
            self.reconciler.mark_dirty()
        except BaseException:
            await self.sql.stop()
            await self.index.close()
            raise
        self._supervisor.spawn("queue.redis.wake-ups", self._wake_ups)
        self._supervisor.spawn("queue.redis.reconciler", self.reconciler.run)
        self._supervisor.spawn("queue.redis.caps", self._keep_caps)
        self._supervisor.spawn("queue.redis.popped", self._requeue_unclaimed)

    async def stop(self) -> None:
        await self._supervisor.cancel_all()
        try:
            await self._requeue_popped()
        finally:
            await self._stop_stores()

    async def _stop_stores(self) -> None:
        try:
            await self.sql.stop()
        finally:
            await self.index.close()

    async def _wake_ups(self) -> None:
        """Listen for wake-ups forever; while Redis is away, workers fall back on their
        idle timeouts and this retries every second, logging the outage once."""
        failing = False
        while True:
            try:
                await self.index.wake_ups(self._on_wake_up)
            except StoreError as exc:
                if not failing:
                    log.warning("Redis queue wake-ups interrupted: %s", exc)
                failing = True
                await asyncio.sleep(_RESUBSCRIBE_S)

    async def refresh_caps(self) -> None:
        """Copy the orgs' overrides of their cap on running jobs into Redis."""
        found = await self.db.fetch(
            "SELECT id, max_running_jobs FROM orgs WHERE max_running_jobs IS NOT NULL"
        )
        await self.index.set_caps({r["id"]: int(r["max_running_jobs"]) for r in found})

    async def _keep_caps(self) -> None:
        """Refresh the caps forever (overrides changed on any node hold within the
        interval; a Redis that lost them gets them back), riding out outages."""
        outage = Outage(
            log, "cannot copy the orgs' caps of running jobs to Redis: %s", "org caps copied again"
        )
        while True:
            await asyncio.sleep(self.caps_interval_s)
            try:
                await self.refresh_caps()
            except StoreError as exc:
                outage.failed(exc)
            else:
                outage.succeeded()

    def wake(self) -> None:
        self._wake.set()

    def _on_wake_up(self, message: str) -> None:
        if queued_elsewhere(message, self._sender):
            # They may outrank the jobs popped ahead (this queue's own did so in `_reflect`).
            self._popped_at = -_POPPED_KEEP_S
        if wakes(message, self._sender, self._sleeps_until):
            self._wake.set()

    def set_on_due(self, callback: Callable[[], asyncio.Future[Any] | None]) -> None:
        self._on_due = callback

    def set_reserve(self, reserve: Callable[[], Reservation | None]) -> None:
        """Room for the claim `announce` makes: a claim here is a Redis script, which no
        store transaction can hold, so it follows the commit (`claim_on_add` is None)."""
        self._reserve = reserve

    def claim_on_add(self) -> None:
        return None

    async def wait_for_work(self, timeout_s: float) -> None:
        self._sleeps_until = utcnow() + timedelta(seconds=timeout_s)
        try:
            if timeout_s > 0 and not self._wake.is_set():
                await wait_event(self._wake, timeout_s)
        finally:
            self._sleeps_until = None
        self._wake.clear()

    async def schedule_changed(self) -> None:
        await self.sql.schedule_changed()

    async def wait_for_schedule_change(self, timeout_s: float) -> None:
        await self.sql.wait_for_schedule_change(timeout_s)

    async def _reflect(self, placements: Sequence[Placement]) -> None:
        """Show committed changes in Redis; if it cannot be reached, the reconciler will."""
        if not placements:
            return
        now_us = to_us(utcnow())
        if any(p.state == "Q" and p.score_us <= now_us for p in placements):
            # Due now, they may outrank the jobs popped ahead.
            self._popped_at = -_POPPED_KEEP_S
        try:
            await self.index.sync(now_us, placements, self._sender)
        except StoreError as exc:
            self._index_failed(exc)
        else:
            self._index_answered()

    def _index_failed(self, exc: StoreError) -> None:
        """A committed change is missing from Redis: the reconciler repairs the index once
        Redis answers."""
        self._index_outage.failed(exc)
        self.reconciler.mark_dirty()

    def _index_answered(self) -> None:
        self._index_outage.succeeded()

    def set_final_hook(self, hook: FinalHook) -> None:
        self.sql.set_final_hook(hook)
        self.sql.after_spawn = self.announce

    def set_outbox(self, outbox: Outbox) -> None:
        self.sql.set_outbox(outbox)

    def set_reopen_hook(self, hook: ReopenHook) -> None:
        self.sql.set_reopen_hook(hook)

    # --- adding work -------------------------------------------------------------------
    async def add(self, executions: Sequence[Execution]) -> None:
        if not executions:
            return
        await self.sql.add(executions)
        await self.announce(executions)

    async def announce(self, executions: Sequence[Execution]) -> None:
        if not executions:
            return
        earliest = min(e.run_at for e in executions)
        reservation = None
        if self._reserve is not None and earliest <= utcnow():
            reservation = self._reserve()
        if reservation is not None:
            # This node's worker has room: the jobs are indexed and its claim popped in
            # one round trip, and claimed without a turn through its claim loop.
            claim = asyncio.ensure_future(self._index_and_claim(executions, reservation))
            self._claims.add(claim)  # the event loop holds tasks only weakly
            claim.add_done_callback(self._claims.discard)
            claim.add_done_callback(lambda done: self._delivered(done, reservation, executions))
            await after_claim(claim)
            return
        await self._reflect([_queued(e) for e in executions])
        # Its own wake-up skipped (see `_on_wake_up`), this node's worker is woken
        # here, unless it will look again before the earliest of them is due.
        if wakes_for(earliest, self._sleeps_until):
            self._wake.set()
        await after_claim(claim_now(self._on_due, executions))

    async def _index_and_claim(
        self, executions: Sequence[Execution], held: Reservation
    ) -> list[Execution]:
        """Index `executions` and claim what is due for the reserved room (not only
        these: the best due jobs, as `acquire` takes them)."""
        now = utcnow()
        now_us, deadline_us = to_us(now), to_us(now + timedelta(seconds=held.lease_s))
        # Due now, they may outrank the jobs popped ahead (see `_reflect`).
        self._popped_at = -_POPPED_KEEP_S
        try:
            popped = await self.index.sync_and_acquire(
                now_us,
                [_queued(e) for e in executions],
                self._sender,
                held.limit,
                deadline_us,
                self.max_running_jobs,
            )
        except StoreError as exc:
            self._index_failed(exc)
            return []
        self._index_answered()
        found = await self._found(popped, now, held.limit, deadline_us)
        result = await self._claim([i for i, _ in found], held.owner, now, held.lease_s)
        await self._reflect(result.placements)
        return result.claimed

    def _delivered(
        self, done: asyncio.Future[list[Execution]], held: Reservation, added: Sequence[Execution]
    ) -> None:
        """Hand the claim's jobs to the worker; its claim loop looks again when the claim
        failed, filled the room, or left some of the jobs `added`."""
        claimed: list[Execution] = []
        if not done.cancelled():
            if done.exception() is None:
                claimed = done.result()
            else:
                log.warning("claiming the jobs just added failed: %s", done.exception())
        held.deliver(claimed)
        taken = {e.id for e in claimed}
        if len(claimed) >= held.limit or any(e.id not in taken for e in added):
            self._wake.set()

    async def reschedule(self, task: Task, run_at: datetime | None) -> int:
        changed = await self.sql.reschedule(task, run_at)
        if changed:
            await self._reflect(await self.records.task_placements(task.id, utcnow()))
            self._wake.set()
        return changed

    async def due_tasks(self, horizon: datetime, limit: int) -> list[Task]:
        return await self.sql.due_tasks(horizon, limit)

    async def next_tick_at(self) -> datetime | None:
        return await self.sql.next_tick_at()

    async def add_ticks(self, batch: TickBatch) -> bool:
        if not await self.sql.add_ticks(batch):
            return False
        # A tick already enqueued under another id leaves a stale entry here, which the
        # claim drops: its id has no row.
        await self._reflect([_queued(e) for e in batch.executions])
        self._wake.set()
        return True

    # --- claiming ----------------------------------------------------------------------
    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        """Pop due jobs from the index and claim them in the database. While a backlog
        lasts, a claim pops the next claim's jobs (as many, in the same fair order) while
        it claims its own, which the previous claim popped: one round trip's wait rather
        than two. Jobs popped ahead are claimed like any others (the database decides);
        left unclaimed for `_POPPED_KEEP_S`, or outranked by jobs queued since, they go
        back to waiting."""
        if self._popped and time.monotonic() - self._popped_at > _POPPED_KEEP_S:
            await self._requeue_popped()
        now = utcnow()
        deadline_us = to_us(now + timedelta(seconds=lease_s))
        ahead, self._popped = self._popped[:limit], self._popped[limit:]
        ids = [i for i, _ in ahead]
        if len(ids) < limit:
            ids += [i for i, _ in await self._pop(now, limit - len(ids), deadline_us)]
        popping = None
        if self._backlog:
            popping = asyncio.ensure_future(self._pop(now, limit, deadline_us))
        try:
            result = await self._claim(ids, owner, now, lease_s)
        finally:
            if popping is not None:
                self._keep_popped(await self._popped_ahead(popping))
        await self._reflect(result.placements)
        return result.claimed

    async def _pop(self, now: datetime, count: int, deadline_us: int) -> list[tuple[str, int]]:
        """Pop up to `count` due jobs (id, due µs)."""
        popped = await self.index.acquire(to_us(now), count, deadline_us, self.max_running_jobs)
        return await self._found(popped, now, count, deadline_us)

    async def _found(
        self, popped: Popped, now: datetime, count: int, deadline_us: int
    ) -> list[tuple[str, int]]:
        """The jobs `popped` (id, due µs), with the parked jobs of resumed tasks queued
        again and popped too when fewer were found (or now and then)."""
        now_us, cap = to_us(now), self.max_running_jobs
        if not popped.epoch_present:
            self.reconciler.kick()
        found = list(zip(popped.ids, popped.due_us, strict=True))
        unpark = popped.paused_tasks and self._unpark_due(len(found) < count)
        if unpark and await self._unpark(now):
            more = await self.index.acquire(now_us, count - len(found), deadline_us, cap)
            found += zip(more.ids, more.due_us, strict=True)
        self._backlog = len(found) >= count
        return found

    async def _popped_ahead(
        self, popping: asyncio.Future[list[tuple[str, int]]]
    ) -> list[tuple[str, int]]:
        """The jobs a pop ahead found; none if it failed (the index is then repaired
        from the database: whatever it popped is reaped once its deadline passes)."""
        try:
            return await popping
        except StoreError as exc:
            self._index_failed(exc)
            return []

    def _keep_popped(self, popped: list[tuple[str, int]]) -> None:
        if popped:
            if not self._popped:
                self._popped_at = time.monotonic()
            self._popped += popped
            self._popped_added.set()

    async def _claim(
        self, ids: list[str], owner: str, now: datetime, lease_s: float
    ) -> ClaimResult:
        if not ids:
            return ClaimResult()
        try:
            return await self.records.claim(ids, owner, now, lease_s)
        except BaseException:
            # Back to waiting rather than stuck in active until the lease runs out; a
            # claim that did commit is corrected when these are popped again.
            await self._reflect([Placement(i, "Q", to_us(now)) for i in ids])
            raise

    async def _requeue_popped(self) -> None:
        """Put the jobs popped ahead back to waiting, where they were."""
        popped, self._popped = self._popped, []
        if popped:
            await self._reflect([Placement(i, "Q", due_us) for i, due_us in popped])
            # This node's own wake-up does not wake its claim loop (see `wakes`).
            self._wake.set()

    async def _requeue_unclaimed(self) -> None:
        """Put jobs popped ahead back once no claim took them in time."""
        while True:
            await self._popped_added.wait()
            self._popped_added.clear()
            while self._popped:
                left = self._popped_at + _POPPED_KEEP_S - time.monotonic()
                if left > 0:
                    await asyncio.sleep(left)
                else:
                    await self._requeue_popped()

    def _unpark_due(self, short: bool) -> bool:
        return short or time.monotonic() - self._unpark_checked >= _UNPARK_CHECK_S

    async def _unpark(self, now: datetime) -> int:
        """Queue again the parked jobs of tasks that are no longer paused."""
        self._unpark_checked = time.monotonic()
        resumed = await self.records.resumed_tasks(await self.index.paused_tasks())
        return await self.index.unpark(to_us(now), resumed) if resumed else 0

    async def renew(
        self, owner: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> LeaseStatus:
        status = await self.sql.renew(owner, claims, lease_s)
        deadline = to_us(utcnow() + timedelta(seconds=lease_s))
        held = {i: deadline for i, _ in claims if i not in status.lost}
        try:
            await self.index.extend(held)
        except StoreError as exc:
            self._index_failed(exc)
        return status

    # --- outcomes ----------------------------------------------------------------------
    async def settle(self, outcomes: Sequence[Outcome]) -> set[str]:
        applied = await self.sql.settle(outcomes)
        rows = [
            (o.execution_id, _KIND[o.kind], to_us(o.run_at) if o.run_at else 0)
            for o in outcomes
            if o.execution_id in applied
        ]
        waiting = True
        try:
            waiting = await self.index.settle(to_us(utcnow()), rows)
        except StoreError as exc:
            self._index_failed(exc)
        else:
            self._index_answered()
        # Only for work: a claim that finds nothing would delay the next job's claim.
        retries = [o.run_at for o in outcomes if o.kind is OutcomeKind.RETRY and o.run_at]
        if waiting or (retries and wakes_for(min(retries), self._sleeps_until)):
            self._wake.set()
        return applied

    async def release(self, claims: Sequence[tuple[str, int]]) -> int:
        released = await self.sql.release(claims)
        if released:
            await self._reflect(await self.records.placements([i for i, _ in claims], utcnow()))
        return released

    async def reap_expired(self, max_rescues: int) -> Reaped:
        reaped = await self.sql.reap_expired(max_rescues)
        now = utcnow()
        # The reaping is committed: whatever fails from here on is the index's to repair.
        try:
            placements = await self.records.placements(reaped.rescued, now)
            placements += [Placement(i, "F", to_us(now)) for i in reaped.dead]
            # Popped but never claimed (a node died in between), or an outcome whose
            # reflection here was lost: the database says where these belong.
            overdue = await self.index.overdue(to_us(now), _OVERDUE_BATCH)
            placements += await self.records.placements(overdue, now)
        except StoreError as exc:
            self._index_failed(exc)
        else:
            await self._reflect(placements)
        if reaped.rescued:
            self._wake.set()
        return reaped

    # --- user actions ------------------------------------------------------------------
    async def cancel(self, execution_id: str, org_id: str | None) -> Execution | None:
        found = await self.sql.cancel(execution_id, org_id)
        if found is not None and found.status is ExecutionStatus.CANCELLED:
            await self._reflect([Placement(found.id, "X")])
        return found

    async def retry_dead_letter(self, dead_letter_id: str, org_id: str | None) -> Execution | None:
        found = await self.sql.retry_dead_letter(dead_letter_id, org_id)
        if found is not None:
            await self._reflect([_queued(found)])
            self._wake.set()
        return found

    # --- observation -------------------------------------------------------------------
    async def depths(self) -> dict[ExecutionStatus, int]:
        return await self.sql.depths()

    async def depths_by_org(self) -> dict[str, dict[ExecutionStatus, int]]:
        return await self.sql.depths_by_org()

    async def next_due(self) -> datetime | None:
        """The earliest delayed job, exactly; with jobs waiting (or popped ahead), a due
        time at or before now (the first waiting job's, to the millisecond)."""
        if self._popped:
            return utcnow()
        waiting, delayed = await self.index.heads()
        found = [] if delayed is None else [from_us(delayed)]
        if waiting is not None:
            found.append(from_us((waiting % PRIORITY_SPAN) * 1000))
        return min(found, default=None)
