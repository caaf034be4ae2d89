"""Operational statistics for the dashboard's overview and `GET /api/v1/stats`.

Throughput and success rate count executions that reached a final state in the last
minute, five minutes and hour; run-time percentiles come from the most recent finished
attempts of the last hour. Every query is bounded by `completed_at`: with the indexes on
(completed_at) and (org_id, completed_at), each reads one hour of history however long
the table grows. For a site admin acting across orgs everything is the cluster's, plus a
breakdown per org (queued and running jobs, and the last hour's outcomes, of the busiest
orgs); for anyone acting in an org, every figure is that org's.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskflowd.domain.entities import Node, utcnow
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.lifecycle.sizes import table_rows
from taskflowd.store.base import Store
from taskflowd.store.db import Database

DepthReader = Callable[[], Awaitable[Mapping[Any, int]]]
OrgDepthReader = Callable[[], Awaitable[Mapping[str, Mapping[str, int]]]]

WINDOWS: tuple[tuple[str, int], ...] = (("1m", 60), ("5m", 300), ("1h", 3600))
RUN_TIME_WINDOW_S = 3600
RUN_TIME_SAMPLES = 10_000
"""Most recent durations the percentiles are computed from: bounded memory and time."""
ORG_BREAKDOWN_MAX = 500
"""Orgs in a site admin's breakdown: the busiest ones (queued and running jobs, then
executions finished in the last hour)."""
_QUEUED_STATES = (
    ExecutionStatus.PENDING.value,
    ExecutionStatus.RETRYING.value,
    ExecutionStatus.PROCESSING.value,
)

# --- queries (the owner variants differ only by the extra condition) ------------------
_COUNTS = (
    "SELECT status, COUNT(*) AS h1, "
    "SUM(CASE WHEN completed_at >= $3 THEN 1 ELSE 0 END) AS m5, "
    "SUM(CASE WHEN completed_at >= $4 THEN 1 ELSE 0 END) AS m1 "
    "FROM job_executions WHERE completed_at >= $1 AND completed_at <= $2 "
)
COUNTS_ALL = _COUNTS + "GROUP BY status"
COUNTS_OWNER = _COUNTS + "AND org_id = $5 GROUP BY status"

# The status is filtered in Python: a status condition here tempts SQLite to walk the
# status index over all history instead of the hour of completed_at.
_DURATIONS = (
    "SELECT status, duration_ms FROM job_executions "
    "WHERE completed_at >= $1 AND completed_at <= $2 AND duration_ms IS NOT NULL "
)
_RECENT = "ORDER BY completed_at DESC LIMIT $3"
DURATIONS_ALL = _DURATIONS + _RECENT
DURATIONS_OWNER = _DURATIONS + "AND org_id = $4 " + _RECENT
FINISHED_BY_ORG = (
    "SELECT org_id, status, COUNT(*) AS n FROM job_executions "
    "WHERE completed_at >= $1 AND completed_at <= $2 GROUP BY org_id, status"
)


_RAN_TO_AN_END = frozenset({ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value})


@dataclass(frozen=True, slots=True)
class Window:
    """Executions that reached a final state within the last `seconds`."""

    name: str
    seconds: int
    completed: int
    failed: int
    cancelled: int

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def per_second(self) -> float:
        return self.finished / self.seconds

    @property
    def success_rate(self) -> float | None:
        """Completed out of completed + failed; None when neither happened."""
        judged = self.completed + self.failed
        return self.completed / judged if judged else None


@dataclass(frozen=True, slots=True)
class RunTimes:
    window_s: int
    samples: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class NodeState:
    node: Node
    alive: bool


@dataclass(frozen=True, slots=True)
class OrgStats:
    """One org in a site admin's breakdown."""

    org_id: str
    slug: str | None
    name: str | None
    depths: dict[str, int]
    last_hour: Window


@dataclass(frozen=True, slots=True)
class Overview:
    generated_at: datetime
    scope: str
    """"all" (a site admin's view) or "own" (the executions of the caller's org)."""
    depths: dict[str, int]
    windows: list[Window]
    run_times: RunTimes
    nodes: list[NodeState]
    tables: dict[str, int] | None = None
    """Rows per table (estimates on PostgreSQL); an admin's view only."""
    org_id: str | None = None
    """The org every figure belongs to; None for the cluster's."""
    orgs: list[OrgStats] | None = None
    """The per-org breakdown of a site admin's view."""


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The `q`-quantile (0..1) of sorted values, interpolating linearly between ranks."""
    if not ordered:
        return None
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


class StatsService:
    def __init__(
        self,
        db: Database,
        store: Store,
        depths: DepthReader,
        node_ttl_s: float,
        clock: Callable[[], datetime] = utcnow,
        samples: int = RUN_TIME_SAMPLES,
        org_depths: OrgDepthReader | None = None,
    ) -> None:
        """`depths`: the whole queue's; `org_depths`: per org (without it, an org's own
        view reads its depths from the database)."""
        self._db = db
        self._store = store
        self._depths = depths
        self._org_depths = org_depths
        self._node_ttl = timedelta(seconds=node_ttl_s)
        self._clock = clock
        self._samples = samples

    async def overview(self, owner_id: str | None) -> Overview:
        """The statistics of org `owner_id` (None: the whole cluster)."""
        now = self._clock()
        by_org = await self._depths_by_org()
        if owner_id is None:
            found: Mapping[Any, int] = await self._depths()
        else:
            found = by_org.get(owner_id, {})
        depths = {str(state): int(n) for state, n in found.items()}
        for state in ExecutionStatus:
            depths.setdefault(state.value, 0)
        windows = await self.windows(now, owner_id)
        run_times = await self.run_times(now, owner_id)
        alive_since = now - self._node_ttl
        nodes = [
            NodeState(node, node.last_heartbeat >= alive_since)
            for node in await self._store.list_nodes()
        ]
        if owner_id is not None:
            return Overview(now, "own", depths, windows, run_times, nodes, org_id=owner_id)
        tables = await table_rows(self._db)
        orgs = await self.breakdown(now, by_org)
        return Overview(now, "all", depths, windows, run_times, nodes, tables, orgs=orgs)

    async def _depths_by_org(self) -> Mapping[str, Mapping[str, int]]:
        if self._org_depths is not None:
            return await self._org_depths()
        found = await self._db.fetch(
            "SELECT org_id, status, COUNT(*) AS n FROM job_executions WHERE status IN "
            f"({', '.join(repr(s) for s in _QUEUED_STATES)}) AND completed_at IS NULL "
            "GROUP BY org_id, status"
        )
        by_org: dict[str, dict[str, int]] = {}
        for row in found:
            by_org.setdefault(row["org_id"], {})[row["status"]] = int(row["n"])
        return by_org

    async def breakdown(
        self, now: datetime, by_org: Mapping[str, Mapping[str, int]]
    ) -> list[OrgStats]:
        """The busiest orgs (at most ORG_BREAKDOWN_MAX): queued and running jobs by
        state, and executions that ended in the last hour."""
        finished: dict[str, dict[str, int]] = {}
        for row in await self._db.fetch(FINISHED_BY_ORG, now - timedelta(seconds=3600), now):
            finished.setdefault(row["org_id"], {})[row["status"]] = int(row["n"])

        def activity(org_id: str) -> tuple[int, int, str]:
            queued = sum(by_org.get(org_id, {}).values())
            return (-queued, -sum(finished.get(org_id, {}).values()), org_id)

        busiest = sorted(set(by_org) | set(finished), key=activity)[:ORG_BREAKDOWN_MAX]
        names = await self._org_names(busiest)
        out: list[OrgStats] = []
        for org_id in busiest:
            ended = finished.get(org_id, {})
            slug, name = names.get(org_id, (None, None))
            depths = {state: int(by_org.get(org_id, {}).get(state, 0)) for state in _QUEUED_STATES}
            last_hour = Window(
                "1h",
                3600,
                ended.get(ExecutionStatus.COMPLETED.value, 0),
                ended.get(ExecutionStatus.FAILED.value, 0),
                ended.get(ExecutionStatus.CANCELLED.value, 0),
            )
            out.append(OrgStats(org_id, slug, name, depths, last_hour))
        return out

    async def _org_names(self, org_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        names: dict[str, tuple[str, str]] = {}
        for start in range(0, len(org_ids), 100):
            chunk = org_ids[start : start + 100]
            marks = ", ".join(f"${i}" for i in range(1, len(chunk) + 1))
            rows = await self._db.fetch(
                f"SELECT id, slug, name FROM orgs WHERE id IN ({marks})", *chunk
            )
            names.update({r["id"]: (r["slug"], r["name"]) for r in rows})
        return names

    async def windows(self, now: datetime, owner_id: str | None) -> list[Window]:
        def ago(seconds: int) -> datetime:
            return now - timedelta(seconds=seconds)

        args: list[Any] = [ago(3600), now, ago(300), ago(60)]
        if owner_id is None:
            found = await self._db.fetch(COUNTS_ALL, *args)
        else:
            found = await self._db.fetch(COUNTS_OWNER, *args, owner_id)
        counts: dict[str, dict[str, int]] = {}
        for row in found:
            counts[row["status"]] = {
                "1h": int(row["h1"] or 0),
                "5m": int(row["m5"] or 0),
                "1m": int(row["m1"] or 0),
            }

        def count(status: ExecutionStatus, window: str) -> int:
            return counts.get(status.value, {}).get(window, 0)

        return [
            Window(
                name,
                seconds,
                count(ExecutionStatus.COMPLETED, name),
                count(ExecutionStatus.FAILED, name),
                count(ExecutionStatus.CANCELLED, name),
            )
            for name, seconds in WINDOWS
        ]

    async def run_times(self, now: datetime, owner_id: str | None) -> RunTimes:
        since = now - timedelta(seconds=RUN_TIME_WINDOW_S)
        if owner_id is None:
            found = await self._db.fetch(DURATIONS_ALL, since, now, self._samples)
        else:
            found = await self._db.fetch(DURATIONS_OWNER, since, now, self._samples, owner_id)
        durations = sorted(
            float(row["duration_ms"]) for row in found if row["status"] in _RAN_TO_AN_END
        )
        return RunTimes(
            RUN_TIME_WINDOW_S,
            len(durations),
            percentile(durations, 0.5),
            percentile(durations, 0.95),
        )
