"""The job queue in the database: executions rows are the jobs.

SQLite serialises claims through its single writer. PostgreSQL claims with
`FOR UPDATE SKIP LOCKED`, serialises claims of rate- or concurrency-limited tasks by
locking their task rows, and wakes idle workers on every node with LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from taskflowd.background import Supervisor, wait_event
from taskflowd.domain.entities import Execution, Task, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from taskflowd.domain.jobs import OWN_JOB_SUFFIX, RUN_MARK, own_job_id
from taskflowd.queue import completions, fair, limits
from taskflowd.queue.base import (
    FinalHook,
    HookOutcome,
    LeaseStatus,
    Outcome,
    OutcomeKind,
    Reaped,
    ReapedJob,
    ReopenHook,
    Reservation,
    TickBatch,
)
from taskflowd.store import rows
from taskflowd.store.db import Conn, Database, PostgresDatabase, Row
from taskflowd.store.errors import StoreError
from taskflowd.store.outbox import Notice, Outbox, execution_notice, iso

log = logging.getLogger("taskflowd.queue")

CHANNEL = "taskflow_jobs"
SCHEDULE_CHANNEL = "taskflow_schedule"
_PENDING = ExecutionStatus.PENDING.value
_RETRYING = ExecutionStatus.RETRYING.value
_PROCESSING = ExecutionStatus.PROCESSING.value
_INSERT = rows.EXECUTION_INSERT
_SETTLE_CHUNK = 400  # below SQLite's 500 terms of a compound SELECT
_RELISTEN_FIRST_S = 0.5
_RELISTEN_MAX_S = 10.0
_LOCAL_CLAIM_WAIT_S = 0.05
"""How long adding work waits for the local worker's claim of it: a claim commits within
a few milliseconds, and one held up (by locks, a slow store) must not hold up the caller."""


# Jobs of paused tasks are never claimed, so they must not count as due either (a worker
# would wake at once, again and again). Without statistics SQLite would pick the status
# index and read every queued row, hence the index hint.
_NEXT_DUE_SQL = (
    "SELECT e.run_at AS due FROM job_executions e{hint} JOIN tasks t ON t.id = e.task_id "
    f"WHERE e.status IN ('{_PENDING}', '{_RETRYING}') AND e.completed_at IS NULL "
    "AND t.status <> 'PAUSED' ORDER BY e.run_at LIMIT 1"
)
_NEXT_DUE = {
    "sqlite": _NEXT_DUE_SQL.format(hint=" INDEXED BY job_executions_run_at"),
    "postgresql": _NEXT_DUE_SQL.format(hint=""),
}
_CANDIDATES = fair.CANDIDATES
_CLAIM = limits.CLAIM + "id IN ({ids}) RETURNING *"
# A workflow's hidden task is not touched for its steps: its row would be rewritten for
# every step a node claims, on every node.
_TOUCHED = "SELECT task_id FROM claimed WHERE workflow_run_id IS NULL"
_PLAIN_CLAIM = fair.PLAIN_CLAIM.format(
    claim=limits.CLAIM, touch=limits.touch_tasks(_TOUCHED), commit=limits.ASYNC_COMMIT
)
_PLAIN_CLAIM_ADDING = fair.PLAIN_CLAIM.format(
    claim=limits.CLAIM, touch=limits.touch_tasks(_TOUCHED), commit=""
)
"""`_PLAIN_CLAIM` inside a transaction that adds work: its commit waits for the flush."""
_NOTHING = HookOutcome()


def claim_now(
    on_due: Callable[[], asyncio.Future[Any] | None] | None, executions: Sequence[Execution]
) -> asyncio.Future[Any] | None:
    """Have this node's worker (its `on_due`) claim at once when some of `executions`,
    committed and claimable, are due now; returns that claim, if one started."""
    if on_due is None or min(e.run_at for e in executions) > utcnow():
        return None
    return on_due()


def wakes_for(due: datetime, sleeps_until: datetime | None) -> bool:
    """Whether work due at `due` needs a claim loop asleep until `sleeps_until` (None: not
    asleep) now: it is not idle, or it would sleep past `due`."""
    return sleeps_until is None or due < sleeps_until


async def after_claim(claim: asyncio.Future[Any] | None) -> None:
    """Wait (briefly at most) for a claim `claim_now` started: it then runs while the
    event loop is idle, rather than beside what the caller does next (an HTTP response),
    which would slow both; the claim's outcome is the worker's to handle."""
    if claim is not None:
        await asyncio.wait([claim], timeout=_LOCAL_CLAIM_WAIT_S)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    if timeout_s > 0 and not event.is_set():
        await wait_event(event, timeout_s)
    event.clear()


_marks = limits.marks


class SqlQueue:
    """`JobQueue` over the store's own database (see `taskflowd.queue.base`)."""

    def __init__(self, db: Database, max_running_jobs: int = 0, *, notifies: bool = True) -> None:
        """`max_running_jobs`: the default cap of each org's running jobs (0: none).
        `notifies`: whether work added is announced to other nodes' workers over
        PostgreSQL (False when the Redis queue, composing this one, announces it)."""
        self.db = db
        self.max_running_jobs = max_running_jobs
        self._t = db.codec
        self._wake = asyncio.Event()
        self._sleeps_until: datetime | None = None
        """When the idle claim loop will look again by itself (None: it is not idle)."""
        self._held_back = False
        """Whether the last claim left due jobs behind at their org's cap of running jobs."""
        self._schedule = asyncio.Event()
        self._listener: Any = None
        self._listener_lost = asyncio.Event()
        self._supervisor = Supervisor(lambda name, exc: None)
        self._pg = db.dialect == "postgresql"
        self._notifies = self._pg and notifies
        self._plain = self._pg
        """Whether the next claim tries `_claim_plain` first (PostgreSQL)."""
        self._sender = uuid.uuid4().hex
        """Names this queue's notices to other nodes' workers."""
        self._final_hook: FinalHook | None = None
        self._outbox: Outbox | None = None
        self._reopen_hook: ReopenHook | None = None
        self.after_spawn: Callable[[Sequence[Execution]], Awaitable[None]] | None = None
        self._on_due: Callable[[], asyncio.Future[Any] | None] | None = None
        self._reserve: Callable[[], Reservation | None] | None = None

    def set_final_hook(self, hook: FinalHook) -> None:
        self._final_hook = hook

    def set_outbox(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def set_reopen_hook(self, hook: ReopenHook) -> None:
        self._reopen_hook = hook

    async def _ended(self, conn: Conn, execution_ids: Sequence[str]) -> HookOutcome:
        """Run the final-outcome hook inside the caller's transaction."""
        if self._final_hook is None or not execution_ids:
            return _NOTHING
        outcome = await self._final_hook(conn, execution_ids)
        if outcome.spawned:
            await self._notify(conn)
        return outcome

    async def _spawned(self, outcome: HookOutcome) -> None:
        """After the commit: make executions the hook queued deliverable, then run what
        the hook left for after the commit."""
        if outcome.spawned:
            self._wake.set()
            if self.after_spawn is not None:
                await self.after_spawn(outcome.spawned)
        for call in outcome.after_commit:
            call()

    # --- lifecycle and wake-ups ------------------------------------------------
    async def start(self) -> None:
        if isinstance(self.db, PostgresDatabase):
            await self._listen(self.db)
            db = self.db
            self._supervisor.spawn("queue.sql.listener", lambda: self._keep_listening(db))

    async def stop(self) -> None:
        await self._supervisor.cancel_all()
        listener, self._listener = self._listener, None
        if listener is not None and isinstance(self.db, PostgresDatabase):
            import asyncpg

            try:
                # This fails only if the connection died just now, and then the pool
                # already has it back and releasing it does nothing.
                with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError):
                    listener.remove_termination_listener(self._on_listener_lost)
                    if self._notifies:
                        await listener.remove_listener(CHANNEL, self._on_notify)
                    await listener.remove_listener(SCHEDULE_CHANNEL, self._on_schedule)
            finally:
                await self.db.pool.release(listener)

    async def _listen(self, db: PostgresDatabase) -> None:
        """LISTEN on both channels over a pooled connection held until `stop`; raises
        StoreError, holding nothing, when PostgreSQL cannot be reached."""
        try:
            conn = await db.pool.acquire()
            try:
                conn.add_termination_listener(self._on_listener_lost)
                if self._notifies:
                    await conn.add_listener(CHANNEL, self._on_notify)
                await conn.add_listener(SCHEDULE_CHANNEL, self._on_schedule)
            except BaseException:
                await db.pool.release(conn)
                raise
        except Exception as exc:
            raise StoreError(f"cannot LISTEN for queue wake-ups: {exc}") from exc
        self._listener = conn

    async def _keep_listening(self, db: PostgresDatabase) -> None:
        """LISTEN again whenever the connection closes (a PostgreSQL restart, a killed
        backend); meanwhile workers on this node fall back on their idle timeouts."""
        while True:
            await self._listener_lost.wait()
            self._listener_lost.clear()
            log.warning("queue wake-ups from other nodes lost: the LISTEN connection closed")
            delay = _RELISTEN_FIRST_S
            while True:
                try:
                    await self._listen(db)
                    break
                except StoreError:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RELISTEN_MAX_S)
            log.info("queue wake-ups from other nodes restored: listening again")
            # Notifications sent while disconnected are gone: look for work and ticks now.
            self._wake.set()
            self._schedule.set()

    def _on_listener_lost(self, conn: object) -> None:
        if conn is self._listener:
            self._listener = None  # the pool took the connection back as it closed
            self._listener_lost.set()

    def _on_notify(self, _conn: object, _pid: object, _channel: object, payload: str) -> None:
        """Work was added on some node. The payload names the sender (this queue's own
        notices are ignored: whatever sent them woke this node's worker already, and a
        second claim would find nothing) and, after a space, when the earliest of the work
        is due (see `announce`): an idle worker that will look again before then stays
        asleep. Any other payload wakes the worker."""
        sender, _, due_text = payload.partition(" ")
        if sender == self._sender:
            return
        try:
            due = datetime.fromisoformat(due_text) if due_text else None
        except ValueError:
            due = None
        if due is None or wakes_for(due, self._sleeps_until):
            self._wake.set()

    def _on_schedule(self, *_: object) -> None:
        self._schedule.set()

    def wake(self) -> None:
        self._wake.set()

    def set_on_due(self, callback: Callable[[], asyncio.Future[Any] | None]) -> None:
        self._on_due = callback

    def set_reserve(self, reserve: Callable[[], Reservation | None]) -> None:
        self._reserve = reserve

    def claim_on_add(self) -> _AddClaim | None:
        reservation = None if self._reserve is None else self._reserve()
        if reservation is None:
            return None
        return _AddClaim(self, reservation)

    async def wait_for_work(self, timeout_s: float) -> None:
        self._sleeps_until = utcnow() + timedelta(seconds=timeout_s)
        try:
            await _wait(self._wake, timeout_s)
        finally:
            self._sleeps_until = None

    async def schedule_changed(self) -> None:
        if self._pg:
            await self.db.execute(f"NOTIFY {SCHEDULE_CHANNEL}")
        self._schedule.set()

    async def wait_for_schedule_change(self, timeout_s: float) -> None:
        await _wait(self._schedule, timeout_s)

    async def _notify(self, conn: Conn, earliest: datetime | None = None) -> None:
        """Tell the other nodes' workers (PostgreSQL) of work added, due at `earliest` at
        the soonest (None: not said, so every idle worker looks)."""
        if self._notifies:
            payload = self._sender if earliest is None else f"{self._sender} {earliest.isoformat()}"
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    # --- adding work -------------------------------------------------------------
    async def add(self, executions: Sequence[Execution]) -> None:
        if not executions:
            return
        values = [rows.execution_insert_values(e, None, self._t) for e in executions]
        if self._pg:
            # Atomic on its own: one round trip instead of three (BEGIN, insert, COMMIT).
            await self.db.executemany(_INSERT, values)
        else:
            # One hand-over to SQLite's writer thread instead of three.
            await self.db.atomic(lambda conn: conn.executemany(_INSERT, values))
        # Committed: this node's worker claims while the other nodes are told.
        await self.announce(executions)

    async def announce(self, executions: Sequence[Execution]) -> None:
        if executions:
            # This node's worker first: it claims while the other nodes are told. An idle
            # worker that will look again before the earliest of them is due is left
            # asleep: waking it would cost a claim that finds nothing.
            earliest = min(e.run_at for e in executions)
            if wakes_for(earliest, self._sleeps_until):
                self._wake.set()
            claim = claim_now(self._on_due, executions)
            await self._notify(self.db, earliest)
            await after_claim(claim)

    async def reschedule(self, task: Task, run_at: datetime | None) -> int:
        now = utcnow()
        changed = await self.db.execute(
            "UPDATE job_executions SET handler = $1, payload = $2, priority = $3, "
            "max_retries = $4, backoff_ms = $5, timeout_ms = $6, updated_at = $7, "
            "run_at = COALESCE($8, run_at), scheduled_for = COALESCE($8, scheduled_for) "
            "WHERE task_id = $9 AND status = $10 AND completed_at IS NULL "
            f"AND job_id NOT LIKE '%{RUN_MARK}%'",
            task.handler,
            self._t.dump(task.payload),
            task.priority,
            task.max_retries,
            task.backoff_ms,
            task.timeout_ms,
            now,
            run_at,
            task.id,
            _PENDING,
        )
        if changed:
            await self.announce([])
            self._wake.set()
        return changed

    async def due_tasks(self, horizon: datetime, limit: int) -> list[Task]:
        found = await self.db.fetch(
            f"SELECT {rows.TASK_COLUMNS} FROM tasks WHERE deleted_at IS NULL AND status = $1 "
            "AND type = $2 AND next_run_at <= $3 ORDER BY next_run_at LIMIT $4",
            TaskStatus.ACTIVE.value,
            TaskType.RECURRING.value,
            horizon,
            limit,
        )
        return [rows.task_from_row(r, self._t) for r in found]

    async def next_tick_at(self) -> datetime | None:
        row = await self.db.fetchrow(
            "SELECT MIN(next_run_at) AS due FROM tasks WHERE deleted_at IS NULL "
            "AND status = $1 AND type = $2",
            TaskStatus.ACTIVE.value,
            TaskType.RECURRING.value,
        )
        return self._t(row["due"]) if row and row["due"] is not None else None

    async def add_ticks(self, batch: TickBatch) -> bool:
        async with self.db.transaction() as conn:
            advanced = await conn.execute(
                "UPDATE tasks SET next_run_at = $1 WHERE id = $2 AND next_run_at = $3 "
                "AND deleted_at IS NULL AND status = $4",
                batch.next_run_at,
                batch.task.id,
                batch.expected_next_run_at,
                TaskStatus.ACTIVE.value,
            )
            if not advanced:
                return False
            for execution in batch.executions:
                await conn.execute(
                    _INSERT + " ON CONFLICT DO NOTHING",
                    *rows.execution_insert_values(execution, execution.scheduled_for, self._t),
                )
            if batch.executions:
                await self._notify(conn)
        self._wake.set()
        return True

    # --- claiming ----------------------------------------------------------------
    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        plain = await self._claim_plain(self.db, owner, limit, lease_s) if self._plain else None
        if plain is None:
            claimed, self._held_back = await self.db.atomic(
                lambda conn: self._claim(conn, owner, limit, lease_s)
            )
        else:
            claimed, self._held_back = plain, False
        return self._ordered(claimed)

    def _ordered(self, claimed: Sequence[Row]) -> list[Execution]:
        """Claimed rows as the worker takes them: best first."""
        found = rows.executions_from_rows(claimed, self._t)
        found.sort(key=lambda e: (-e.priority, e.run_at, e.id))
        return found

    async def _claim_plain(
        self, conn: Conn, owner: str, limit: int, lease_s: float, *, alone: bool = True
    ) -> list[Row] | None:
        """PostgreSQL: claim in one statement and one round trip (`fair.PLAIN_CLAIM`); None
        when the due jobs need the claim in steps (several orgs, limits, caps). Tried
        again once a claim in steps finds plain jobs. `alone` as for `_claim`."""
        now = utcnow()
        found = await conn.fetch(
            _PLAIN_CLAIM if alone else _PLAIN_CLAIM_ADDING,
            _PROCESSING,
            owner,
            now + timedelta(seconds=lease_s),
            now,
            limit,
            self.max_running_jobs,
        )
        if not found[0]["plain"]:
            self._plain = False
            return None
        return [r for r in found if r["id"] is not None]

    async def _claim(
        self, conn: Conn, owner: str, limit: int, lease_s: float, *, alone: bool = True
    ) -> tuple[list[Row], bool]:
        """The claimed rows, and whether due jobs were left behind at their org's cap.
        `alone`: the transaction only claims, so (PostgreSQL) its commit need not wait
        for the flush; a transaction that adds work as well must wait for it."""
        now = utcnow()
        due = await conn.fetch(_CANDIDATES[self.db.dialect], now, limit)
        self._plain = self._pg and fair.plain(due, self.max_running_jobs)
        if not due:
            return [], False
        caps = {r["org_id"]: r["org_cap"] for r in due}
        room = await fair.room_per_org(conn, caps, self.max_running_jobs, lock=self._pg)
        candidates = fair.round_robin(due, limit, room)
        held_back = len(candidates) < min(len(due), limit)
        admitted, _ = await limits.admit(conn, candidates, now, postgres=self._pg)
        if not admitted:
            return [], held_back
        # The claim time is read after admission, which may have waited for another
        # claim's lock: a job admitted because the one before it ended must not
        # appear to have started before that one ended.
        now = utcnow()
        args = (_PROCESSING, owner, now + timedelta(seconds=lease_s), now, *admitted)
        update = _CLAIM.format(ids=_marks(len(admitted), 5))
        if self._pg:
            # The tasks' last run is recorded by the same statement: one round trip less.
            claim = limits.touching(update, _TOUCHED, asynchronous=alone)
            return await conn.fetch(claim, *args), held_back
        claimed = await conn.fetch(update, *args)
        touched = {r["task_id"] for r in claimed if r["workflow_run_id"] is None}
        await limits.touch_last_run(conn, touched, now, postgres=False)
        return claimed, held_back

    async def renew(
        self, owner: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> LeaseStatus:
        if not claims:
            return LeaseStatus(frozenset(), frozenset())
        now = utcnow()
        fences = dict(claims)
        ids = list(fences)
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE job_executions SET lease_expires_at = $1 "
                f"WHERE lease_owner = $2 AND status = $3 AND id IN ({_marks(len(ids), 4)})",
                now + timedelta(seconds=lease_s),
                owner,
                _PROCESSING,
                *ids,
            )
            found = await conn.fetch(
                "SELECT id, fence, status, lease_owner, cancel_requested FROM job_executions "
                f"WHERE id IN ({_marks(len(ids))})",
                *ids,
            )
        held = {
            r["id"]: bool(r["cancel_requested"])
            for r in found
            if r["fence"] == fences[r["id"]]
            and r["status"] == _PROCESSING
            and r["lease_owner"] == owner
        }
        lost = frozenset(i for i in ids if i not in held)
        return LeaseStatus(lost, frozenset(i for i, cancel in held.items() if cancel))

    # --- outcomes ------------------------------------------------------------------
    async def settle(self, outcomes: Sequence[Outcome]) -> set[str]:
        if not outcomes:
            return set()
        applied, spawned = await self.db.atomic(lambda conn: self._settle(conn, outcomes))
        if self._freed_slots_matter(outcomes):
            self._wake.set()
        await self._spawned(spawned)
        return applied

    def _freed_slots_matter(self, outcomes: Sequence[Outcome]) -> bool:
        """Whether settled outcomes may give the idle claim loop work: the last claim left
        due jobs behind at their org's cap, or a retry is due before it looks again. An
        idle node is otherwise left asleep: a claim that finds nothing would only delay
        the claim of the next job to arrive."""
        if self._held_back:
            return True
        retries = [o.run_at for o in outcomes if o.kind is OutcomeKind.RETRY and o.run_at]
        return bool(retries) and wakes_for(min(retries), self._sleeps_until)

    async def _settle(
        self, conn: Conn, outcomes: Sequence[Outcome]
    ) -> tuple[set[str], HookOutcome]:
        applied: set[str] = set()
        own: dict[str, str] = {}
        completed = [o for o in outcomes if o.kind is OutcomeKind.COMPLETED]
        for start in range(0, len(completed), _SETTLE_CHUNK):
            chunk = completed[start : start + _SETTLE_CHUNK]
            for row in await completions.record(conn, chunk, postgres=self._pg, codec=self._t):
                applied.add(row["id"])
                if row["job_id"] == own_job_id(row["task_id"]):
                    own[row["id"]] = row["task_id"]
        for outcome in outcomes:
            if outcome.kind is not OutcomeKind.COMPLETED and await self._settle_one(conn, outcome):
                applied.add(outcome.execution_id)
        await self._touch_tasks(conn, [o for o in outcomes if o.execution_id in applied], own)
        if any(o.kind is OutcomeKind.RETRY for o in outcomes):
            await self._notify(conn)
        ended = [
            o.execution_id
            for o in outcomes
            if o.execution_id in applied and o.kind is not OutcomeKind.RETRY
        ]
        if self._outbox is not None:
            notices = (n for o in outcomes if o.execution_id in applied for n in _notices(o))
            await self._outbox.write(conn, notices)
        return applied, await self._ended(conn, ended)

    async def _settle_one(self, conn: Conn, o: Outcome) -> bool:
        error = self._t.dump(o.error)
        if o.kind is OutcomeKind.RETRY:
            status, run_at, completed_at = _RETRYING, o.run_at, None
        elif o.kind is OutcomeKind.DEAD:
            status, run_at, completed_at = ExecutionStatus.FAILED.value, None, o.finished_at
        else:
            status, run_at, completed_at = (
                ExecutionStatus.CANCELLED.value,
                None,
                o.finished_at,
            )
        changed = await conn.execute(
            "UPDATE job_executions SET status = $1, error = $2, run_at = COALESCE($3, run_at), "
            "completed_at = $4, duration_ms = $5, updated_at = $6, lease_owner = NULL, "
            "lease_expires_at = NULL, cancel_requested = $7 "
            "WHERE id = $8 AND fence = $9 AND status = $10",
            status,
            error,
            run_at,
            completed_at,
            o.duration_ms,
            o.finished_at,
            False,
            o.execution_id,
            o.fence,
            _PROCESSING,
        )
        if not changed:
            return False
        if o.kind in (OutcomeKind.RETRY, OutcomeKind.DEAD):
            await conn.execute(
                "INSERT INTO retry_history (execution_id, attempt, error, failed_at, next_run_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                o.execution_id,
                o.attempt,
                error,
                o.finished_at,
                run_at,
            )
        if o.kind is OutcomeKind.DEAD:
            await self._dead_letter(conn, o.execution_id, o.error, o.finished_at)
        return True

    async def _dead_letter(self, conn: Conn, execution_id: str, error: Any, at: datetime) -> None:
        await conn.execute(
            "INSERT INTO dead_letter_jobs (id, execution_id, task_id, job_id, owner_id, payload, "
            "error, attempts, created_at, org_id) SELECT $1, id, task_id, job_id, owner_id, "
            "payload, $2, attempts, $3, org_id FROM job_executions WHERE id = $4",
            str(uuid.uuid4()),
            self._t.dump(error),
            at,
            execution_id,
        )

    async def _touch_tasks(
        self, conn: Conn, outcomes: Sequence[Outcome], own: dict[str, str]
    ) -> None:
        """End one-time and delayed tasks with their own job (runs asked for through the
        API do not end a task). `own` maps the completed jobs that are their task's own
        job to the task (the completions' UPDATE returned them); the jobs of the other
        final outcomes are looked up."""
        final: dict[str, TaskStatus] = {}
        for o in outcomes:
            if o.kind is OutcomeKind.COMPLETED:
                final[o.execution_id] = TaskStatus.COMPLETED
            elif o.kind is not OutcomeKind.RETRY:
                final[o.execution_id] = TaskStatus.FAILED
        failed = [i for i, status in final.items() if status is TaskStatus.FAILED]
        if failed:
            found = await conn.fetch(
                f"SELECT e.id, e.task_id FROM job_executions e WHERE e.id IN "
                f"({_marks(len(failed))}) AND e.job_id = e.task_id || '{OWN_JOB_SUFFIX}'",
                *failed,
            )
            own = {**own, **{row["id"]: row["task_id"] for row in found}}
        ending: dict[TaskStatus, list[str]] = {}
        for execution_id, task_id in own.items():
            if execution_id in final:
                ending.setdefault(final[execution_id], []).append(task_id)
        now = utcnow()
        for status, task_ids in ending.items():
            await self._end_one_time_tasks(conn, task_ids, status, now)

    async def release(self, claims: Sequence[tuple[str, int]]) -> int:
        if not claims:
            return 0
        ids = [i for i, _ in claims]
        async with self.db.transaction() as conn:
            # The fences are checked on the rows read (and locked) first, so one statement
            # releases the whole batch.
            lock = " FOR UPDATE" if self._pg else ""
            found = await conn.fetch(
                f"SELECT id, fence FROM job_executions WHERE id IN ({_marks(len(ids))}) "
                f"AND status = '{_PROCESSING}'{lock}",
                *ids,
            )
            fences = dict(claims)
            mine = [r["id"] for r in found if r["fence"] == fences[r["id"]]]
            if not mine:
                return 0
            count = await conn.execute(
                "UPDATE job_executions SET status = $1, attempts = attempts - 1, "
                "lease_owner = NULL, lease_expires_at = NULL, started_at = NULL, run_at = $2, "
                f"updated_at = $2 WHERE status = $3 AND id IN ({_marks(len(mine), 4)})",
                _PENDING,
                utcnow(),
                _PROCESSING,
                *mine,
            )
            if count:
                await self._notify(conn)
        return count

    async def reap_expired(self, max_rescues: int) -> Reaped:
        now = utcnow()
        lock = " FOR UPDATE SKIP LOCKED" if self._pg else ""
        rescued: list[str] = []
        dead: list[str] = []
        jobs: dict[str, ReapedJob] = {}
        async with self.db.transaction() as conn:
            expired = await conn.fetch(
                "SELECT id, task_id, job_id, handler, owner_id, org_id, attempts, rescues, "
                "lease_owner FROM job_executions "
                "WHERE status = $1 AND lease_expires_at < $2 AND completed_at IS NULL "
                f"AND run_at <= $2 LIMIT 500{lock}",
                _PROCESSING,
                now,
            )
            for row in expired:
                jobs[row["id"]] = ReapedJob(
                    row["task_id"], row["handler"], row["owner_id"], row["org_id"]
                )
                error = {
                    "type": "lease_expired",
                    "message": f"worker {row['lease_owner']} stopped renewing its lease",
                }
                give_up = row["rescues"] >= max_rescues
                await conn.execute(
                    "UPDATE job_executions SET status = $1, run_at = $2, rescues = rescues + 1, "
                    "lease_owner = NULL, lease_expires_at = NULL, error = $3, updated_at = $2, "
                    "completed_at = $4 WHERE id = $5",
                    ExecutionStatus.FAILED.value if give_up else _PENDING,
                    now,
                    self._t.dump(error),
                    now if give_up else None,
                    row["id"],
                )
                await conn.execute(
                    "INSERT INTO retry_history (execution_id, attempt, error, failed_at, "
                    "next_run_at) VALUES ($1, $2, $3, $4, $5)",
                    row["id"],
                    row["attempts"],
                    self._t.dump(error),
                    now,
                    None if give_up else now,
                )
                if give_up:
                    await self._dead_letter(conn, row["id"], error, now)
                    if self._outbox is not None:
                        await self._outbox.write(conn, _reaped_notices(row, error, now))
                    if row["job_id"] == own_job_id(row["task_id"]):
                        await self._end_one_time_task(conn, row["task_id"], TaskStatus.FAILED, now)
                    dead.append(row["id"])
                else:
                    rescued.append(row["id"])
            if rescued:
                await self._notify(conn)
            spawned = await self._ended(conn, dead)
        if rescued:
            self._wake.set()
        await self._spawned(spawned)
        return Reaped(rescued, dead, jobs)

    # --- user actions ------------------------------------------------------------
    async def cancel(self, execution_id: str, org_id: str | None) -> Execution | None:
        owner_clause = "" if org_id is None else " AND org_id = $4"
        owner_args = () if org_id is None else (org_id,)
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE job_executions SET status = $1, completed_at = $2, updated_at = $2 "
                f"WHERE id = $3{owner_clause} AND status IN ('{_PENDING}', '{_RETRYING}')",
                ExecutionStatus.CANCELLED.value,
                now,
                execution_id,
                *owner_args,
            )
            await conn.execute(
                "UPDATE job_executions SET cancel_requested = $1, updated_at = $2 "
                f"WHERE id = $3{owner_clause} AND status = '{_PROCESSING}'",
                True,
                now,
                execution_id,
                *owner_args,
            )
            row = await conn.fetchrow(
                f"SELECT * FROM job_executions WHERE id = $1{owner_clause.replace('$4', '$2')}",
                execution_id,
                *owner_args,
            )
            if (
                row is not None
                and row["status"] == ExecutionStatus.CANCELLED.value
                and row["job_id"] == own_job_id(row["task_id"])
            ):
                await self._end_one_time_task(conn, row["task_id"], TaskStatus.FAILED, now)
            cancelled = row is not None and row["status"] == ExecutionStatus.CANCELLED.value
            spawned = await self._ended(conn, [execution_id] if cancelled else [])
        await self._spawned(spawned)
        return rows.execution_from_row(row, self._t) if row else None

    async def _end_one_time_task(
        self, conn: Conn, task_id: str, status: TaskStatus, at: datetime
    ) -> None:
        await self._end_one_time_tasks(conn, [task_id], status, at)

    async def _end_one_time_tasks(
        self, conn: Conn, task_ids: Sequence[str], status: TaskStatus, at: datetime
    ) -> None:
        """Mark active one-time or delayed tasks `status`: their own jobs have ended."""
        # The ids are the only indexable condition: with `status = $5` bare, SQLite's
        # planner walks the status index over every active task instead (20,000 one-time
        # tasks: most of a drain's time went there).
        await conn.execute(
            "UPDATE tasks SET status = $1, updated_at = $2, next_run_at = NULL "
            f"WHERE id IN ({_marks(len(task_ids), 6)}) "
            "AND CASE WHEN type IN ($3, $4) AND status = $5 THEN TRUE ELSE FALSE END",
            status.value,
            at,
            TaskType.ONE_TIME.value,
            TaskType.DELAYED.value,
            TaskStatus.ACTIVE.value,
            *sorted(task_ids),
        )

    async def retry_dead_letter(self, dead_letter_id: str, org_id: str | None) -> Execution | None:
        owner_clause = "" if org_id is None else " AND org_id = $2"
        owner_args = () if org_id is None else (org_id,)
        now = utcnow()
        async with self.db.transaction() as conn:
            # A deleted task's jobs stay dead: there is nothing left to run them for.
            entry = await conn.fetchrow(
                f"DELETE FROM dead_letter_jobs WHERE id = $1{owner_clause} AND task_id IN "
                "(SELECT id FROM tasks WHERE deleted_at IS NULL) RETURNING execution_id, task_id",
                dead_letter_id,
                *owner_args,
            )
            if entry is None:
                return None
            if self._reopen_hook is not None:
                await self._reopen_hook(conn, entry["execution_id"])
            row = await conn.fetchrow(
                "UPDATE job_executions SET status = $1, run_at = $2, updated_at = $2, "
                "completed_at = NULL, rescues = 0, cancel_requested = $3 WHERE id = $4 RETURNING *",
                _PENDING,
                now,
                False,
                entry["execution_id"],
            )
            if row is not None and row["job_id"] == own_job_id(entry["task_id"]):
                # The task's own job runs again: the task is active again until it ends.
                await conn.execute(
                    "UPDATE tasks SET status = $1, updated_at = $2 WHERE id = $3 "
                    "AND type IN ($4, $5) AND status = $6 AND deleted_at IS NULL",
                    TaskStatus.ACTIVE.value,
                    now,
                    entry["task_id"],
                    TaskType.ONE_TIME.value,
                    TaskType.DELAYED.value,
                    TaskStatus.FAILED.value,
                )
            await self._notify(conn)
        self._wake.set()
        return rows.execution_from_row(row, self._t) if row else None

    # --- observation -----------------------------------------------------------------
    async def depths(self) -> dict[ExecutionStatus, int]:
        found = await self.db.fetch(
            "SELECT status, COUNT(*) AS n FROM job_executions "
            f"WHERE status IN ('{_PENDING}', '{_RETRYING}', '{_PROCESSING}') "
            "AND completed_at IS NULL GROUP BY status"
        )
        depths = dict.fromkeys(ExecutionStatus, 0)
        for row in found:
            depths[ExecutionStatus(row["status"])] = int(row["n"])
        return depths

    async def depths_by_org(self) -> dict[str, dict[ExecutionStatus, int]]:
        found = await self.db.fetch(
            "SELECT org_id, status, COUNT(*) AS n FROM job_executions "
            f"WHERE status IN ('{_PENDING}', '{_RETRYING}', '{_PROCESSING}') "
            "AND completed_at IS NULL GROUP BY org_id, status"
        )
        by_org: dict[str, dict[ExecutionStatus, int]] = {}
        for row in found:
            by_org.setdefault(row["org_id"], {})[ExecutionStatus(row["status"])] = int(row["n"])
        return by_org

    async def next_due(self) -> datetime | None:
        row = await self.db.fetchrow(_NEXT_DUE[self.db.dialect])
        return self._t(row["due"]) if row and row["due"] is not None else None


class _AddClaim:
    """`AddClaim` of the SQL queue: the claim shares the adding transaction (its commit,
    on PostgreSQL its NOTIFY to the other nodes of the jobs it did not take)."""

    def __init__(self, queue: SqlQueue, reservation: Reservation) -> None:
        self._queue = queue
        self._reservation = reservation
        self._claimed: tuple[list[Row], bool] | None = None
        """The claim's rows and whether it left due jobs at their org's cap; None: no
        claim ran in the transaction."""
        self._added: Sequence[Execution] = ()

    async def claim(self, conn: Conn, added: Sequence[Execution]) -> None:
        if not added:
            return
        earliest = min(e.run_at for e in added)
        if earliest > utcnow():
            return
        queue, held = self._queue, self._reservation
        self._added = added
        # As `acquire`: in one statement while the due jobs are plain, else in steps.
        plain = None
        if queue._plain:
            plain = await queue._claim_plain(
                conn, held.owner, held.limit, held.lease_s, alone=False
            )
        if plain is None:
            self._claimed = await queue._claim(
                conn, held.owner, held.limit, held.lease_s, alone=False
            )
        else:
            self._claimed = plain, False
        # Other nodes are told only of work this claim left: one round trip less when it
        # took all it added, which is the idle node's every run.
        if self._left_some():
            await queue._notify(conn, earliest)

    def _left_some(self) -> bool:
        """Whether the claim left some of the jobs added (deferred by their task's limits,
        held back at their org's cap, beyond the worker's room)."""
        claimed = set() if self._claimed is None else {row["id"] for row in self._claimed[0]}
        return any(e.id not in claimed for e in self._added)

    def ended(self, committed: bool) -> None:
        if not committed or self._claimed is None:
            self._reservation.deliver([])
            return
        queue = self._queue
        claimed, queue._held_back = self._claimed
        self._reservation.deliver(queue._ordered(claimed))
        # An idle claim loop stays asleep when the claim took all it added and had room
        # to spare: whatever else is queued was due when the loop chose its sleep, and the
        # sleep ends by then. Otherwise (a full claim; an added job deferred by its
        # task's limits or held back at its org's cap) it looks again.
        if len(claimed) >= self._reservation.limit or self._left_some():
            queue._wake.set()

    @property
    def claimed(self) -> bool:
        return self._claimed is not None


_EVENTS = {
    OutcomeKind.COMPLETED: ("execution.completed",),
    OutcomeKind.RETRY: ("execution.retrying",),
    OutcomeKind.DEAD: ("execution.failed", "execution.dead_lettered"),
    OutcomeKind.CANCELLED: (),
}
_STATUS = {
    OutcomeKind.COMPLETED: ExecutionStatus.COMPLETED.value,
    OutcomeKind.RETRY: _RETRYING,
    OutcomeKind.DEAD: ExecutionStatus.FAILED.value,
    OutcomeKind.CANCELLED: ExecutionStatus.CANCELLED.value,
}


def _notices(o: Outcome) -> list[Notice]:
    """The webhook notices of one applied outcome."""
    return [
        execution_notice(
            event,
            o.execution_id,
            _STATUS[o.kind],
            o.finished_at,
            taskId=o.task_id,
            attempts=o.attempt,
            startedAt=iso(o.started_at),
            completedAt=None if o.kind is OutcomeKind.RETRY else iso(o.finished_at),
            duration=o.duration_ms,
            result=o.result,
            error=o.error,
            nextAttemptAt=iso(o.run_at) if o.kind is OutcomeKind.RETRY else None,
        )
        for event in _EVENTS[o.kind]
    ]


def _reaped_notices(row: Any, error: Any, at: datetime) -> list[Notice]:
    """The webhook notices of a job dead-lettered because its node kept dying."""
    return [
        execution_notice(
            event,
            row["id"],
            ExecutionStatus.FAILED.value,
            at,
            taskId=row["task_id"],
            attempts=row["attempts"],
            completedAt=iso(at),
            error=error,
        )
        for event in _EVENTS[OutcomeKind.DEAD]
    ]
