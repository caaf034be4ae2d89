"""The database side of the Redis queue: claiming jobs popped from Redis, and reading
what the system of record says about jobs whose index entries must be corrected.

Redis only proposes jobs; a job is claimed when the conditional UPDATE here moves its row
from queued to PROCESSING with a new fencing token. Whatever could not be claimed gets a
`Placement` telling the index where it belongs instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from taskflowd.domain.entities import Execution, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskStatus
from taskflowd.queue import limits
from taskflowd.queue.redis_index import Placement, to_us
from taskflowd.store import rows
from taskflowd.store.db import Conn, Database, Row
from taskflowd.store.errors import StoreError

log = logging.getLogger("taskflowd.queue.redis")

_PENDING = ExecutionStatus.PENDING.value
_RETRYING = ExecutionStatus.RETRYING.value
_PROCESSING = ExecutionStatus.PROCESSING.value
_QUEUED = (_PENDING, _RETRYING)
_PAUSED = TaskStatus.PAUSED.value
_RECHECK_S = 1.0
"""How soon a running job whose lease already expired is looked at again."""

# The id list is the only indexable condition on purpose: the other tests sit inside a
# CASE, which no index or partial-index predicate can match, so even with statistics
# that say the table is empty the planner looks the popped ids up by primary key rather
# than scanning the run_at index of every queued job.
_CLAIM = (
    limits.CLAIM + "id {ids} AND CASE WHEN status IN "
    f"('{_PENDING}', '{_RETRYING}') AND run_at <= $4 THEN EXISTS (SELECT 1 FROM tasks t "
    f"WHERE t.id = job_executions.task_id AND t.status <> '{_PAUSED}' "
    "AND t.deleted_at IS NULL{limits}) END RETURNING *"
)
_UNLIMITED = " AND t.concurrency IS NULL AND t.rate_limit IS NULL"
_STATE_OF = (
    "SELECT e.id, e.task_id, e.org_id, e.status, e.priority, e.run_at, e.lease_expires_at, "
    "t.status AS task_status, t.deleted_at, t.concurrency, t.rate_limit "
    "FROM job_executions e JOIN tasks t ON t.id = e.task_id WHERE "
)
_STATE = _STATE_OF + "e.id {ids}"
_QUEUED_OF_TASK = (
    _STATE_OF + f"e.task_id = $1 AND e.status IN ('{_PENDING}', '{_RETRYING}') "
    "AND e.completed_at IS NULL"
)


@dataclass(slots=True)
class ClaimResult:
    claimed: list[Execution] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)


class RecordClaims:
    """Claims and state reads against the store's database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._t = db.codec
        self._dialect = db.dialect

    def _ids(self, ids: Sequence[str], start: int) -> tuple[str, list[Any]]:
        """`IN (…)` for SQLite, `= ANY($n)` for PostgreSQL (one prepared statement for any
        number of ids): the SQL fragment and its arguments."""
        if self._dialect == "postgresql":
            return f"= ANY(${start}::text[])", [list(ids)]
        return f"IN ({limits.marks(len(ids), start)})", list(ids)

    async def claim(
        self, ids: Sequence[str], owner: str, now: datetime, lease_s: float
    ) -> ClaimResult:
        """Claim the popped `ids` that are still claimable: queued, due, task active and
        within its limits. The rest get the placement the database implies."""
        result = ClaimResult()
        head = (_PROCESSING, owner, now + timedelta(seconds=lease_s), now)
        fragment, args = self._ids(ids, 5)
        plain = _CLAIM.format(limits=_UNLIMITED, ids=fragment)
        if self._dialect == "postgresql":
            # The common case in one statement (its own transaction, one round trip),
            # committed without waiting for its flush.
            found = list(await self.db.fetch(limits.touching(plain), *head, *args))
            rest = self._unclaimed(ids, found)
            if rest:
                found += await self._claim_rest_apart(rest, owner, lease_s, now, result)
        else:

            async def claim(conn: Conn) -> list[Row]:
                found = list(await conn.fetch(plain, *head, *args))
                rest = self._unclaimed(ids, found)
                if rest:
                    found += await self._claim_rest(conn, rest, owner, lease_s, now, result)
                await self._touch(conn, found, now)
                return found

            # One hand-over to SQLite's writer thread for the whole claim.
            found = await self.db.atomic(claim)
        result.claimed = [rows.execution_from_row(r, self._t) for r in found]
        result.claimed.sort(key=lambda e: (-e.priority, e.run_at, e.id))
        return result

    async def _claim_rest_apart(
        self, rest: Sequence[str], owner: str, lease_s: float, now: datetime, result: ClaimResult
    ) -> list[Row]:
        """`_claim_rest` in a transaction of its own, after the plain claim committed. If it
        fails, the committed claims are still returned (to be run, not stranded until their
        lease expires) and the rest go back to waiting."""
        try:
            async with self.db.transaction() as conn:
                more = await self._claim_rest(conn, rest, owner, lease_s, now, result)
                await self._touch(conn, more, now)
        except StoreError as exc:
            log.warning("could not claim %d jobs of limited or changed tasks: %s", len(rest), exc)
            result.placements += [Placement(i, "Q", to_us(now)) for i in rest]
            return []
        return more

    @staticmethod
    def _unclaimed(ids: Sequence[str], claimed: Sequence[Row]) -> list[str]:
        got = {r["id"] for r in claimed}
        return [i for i in ids if i not in got]

    async def _touch(self, conn: Conn, claimed: Sequence[Row], now: datetime) -> None:
        """Record the claim time as the tasks' last run."""
        task_ids = {r["task_id"] for r in claimed}
        await limits.touch_last_run(conn, task_ids, now, postgres=self._dialect == "postgresql")

    async def _claim_rest(
        self,
        conn: Conn,
        ids: Sequence[str],
        owner: str,
        lease_s: float,
        now: datetime,
        result: ClaimResult,
    ) -> list[Row]:
        """Jobs the plain claim skipped: admit those of limited tasks, place the others."""
        fragment, args = self._ids(ids, 1)
        states = await conn.fetch(_STATE.format(ids=fragment), *args)
        known = {r["id"] for r in states}
        result.placements += [Placement(i, "X") for i in ids if i not in known]
        candidates = [r for r in states if self._claimable(r, now)]
        admitted: list[str] = []
        deferred: dict[str, datetime] = {}
        if candidates:
            admitted, deferred = await limits.admit(
                conn, candidates, now, postgres=self._dialect == "postgresql"
            )
        claimed: list[Row] = []
        if admitted:
            # Timed after admission, which may have waited for another claim's lock (as in
            # `SqlQueue.acquire`).
            started = utcnow()
            head = (_PROCESSING, owner, started + timedelta(seconds=lease_s), started)
            fragment, args = self._ids(admitted, 5)
            claimed = list(await conn.fetch(_CLAIM.format(limits="", ids=fragment), *head, *args))
        got = {r["id"] for r in claimed}
        for row in states:
            if row["id"] in got:
                continue
            run_at = deferred.get(row["id"])
            result.placements.append(self.placement(row, now, run_at))
        return claimed

    def _claimable(self, row: Row, now: datetime) -> bool:
        return (
            row["status"] in _QUEUED
            and row["task_status"] != _PAUSED
            and row["deleted_at"] is None
            and self._t(row["run_at"]) <= now
        )

    def placement(self, row: Row, now: datetime, run_at: datetime | None = None) -> Placement:
        """Where the index should hold the job whose state `row` (from `_STATE`) shows."""
        status, execution_id, org_id = row["status"], row["id"], row["org_id"]
        if status == _PROCESSING:
            lease = row["lease_expires_at"]
            deadline = max(self._t(lease), now) if lease is not None else now
            recheck = now + timedelta(seconds=_RECHECK_S)
            return Placement(execution_id, "A", to_us(max(deadline, recheck)), org_id=org_id)
        if status not in _QUEUED or row["deleted_at"] is not None:
            return Placement(execution_id, "X")
        due = to_us(run_at or self._t(row["run_at"]))
        state = "P" if row["task_status"] == _PAUSED else "Q"
        return Placement(execution_id, state, due, row["priority"], row["task_id"], org_id)

    async def placements(self, ids: Sequence[str], now: datetime) -> list[Placement]:
        """What the database says about each of `ids` (gone when it has no row)."""
        if not ids:
            return []
        fragment, args = self._ids(ids, 1)
        states = await self.db.fetch(_STATE.format(ids=fragment), *args)
        known = {r["id"]: r for r in states}
        return [self.placement(known[i], now) if i in known else Placement(i, "X") for i in ids]

    async def task_placements(self, task_id: str, now: datetime) -> list[Placement]:
        """Placements of every queued job of one task."""
        states = await self.db.fetch(_QUEUED_OF_TASK, task_id)
        return [self.placement(r, now) for r in states]

    async def resumed_tasks(self, task_ids: Sequence[str]) -> list[str]:
        """Those of `task_ids` no longer paused (resumed, deleted or gone)."""
        if not task_ids:
            return []
        fragment, args = self._ids(task_ids, 1)
        still = await self.db.fetch(
            f"SELECT id FROM tasks WHERE id {fragment} AND status = '{_PAUSED}' "
            "AND deleted_at IS NULL",
            *args,
        )
        paused = {r["id"] for r in still}
        return [t for t in task_ids if t not in paused]
