"""Finished executions per minute over the last hour, for the overview's throughput chart.

One grouped query per call, bounded by `completed_at` like the statistics service's, so
it reads one hour of history however long the table grows. Minutes are counted in UTC
from the Unix epoch on both databases (SQLite keeps integer microseconds, PostgreSQL
`timestamptz`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskflowd.domain.entities import utcnow
from taskflowd.store.db import Database

MINUTES = 60
_MINUTE_OF = {
    "sqlite": "completed_at / 60000000",
    "postgresql": "CAST(FLOOR(EXTRACT(EPOCH FROM completed_at) / 60) AS BIGINT)",
}
_QUERY = (
    "SELECT {minute} AS minute, status, COUNT(*) AS n FROM job_executions "
    "WHERE completed_at >= $1 AND completed_at <= $2 "
    "AND status IN ('COMPLETED', 'FAILED', 'CANCELLED') {owner}"
    "GROUP BY 1, status"
)
QUERIES = {
    (dialect, owned): _QUERY.format(minute=minute, owner="AND org_id = $3 " if owned else "")
    for dialect, minute in _MINUTE_OF.items()
    for owned in (False, True)
}
"""The query per (dialect, restricted to one owner)."""


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per minute, oldest first; `start` is the first minute's beginning (UTC)."""

    start: datetime
    completed: list[int]
    failed: list[int]

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "stepS": 60,
            "completed": self.completed,
            "failed": self.failed,
        }


class ThroughputSeries:
    def __init__(
        self, db: Database, clock: Callable[[], datetime] = utcnow, minutes: int = MINUTES
    ) -> None:
        self._db = db
        self._clock = clock
        self._minutes = minutes

    async def per_minute(self, owner_id: str | None) -> Series:
        """The last `minutes` minutes, the current (partial) one last; cancelled runs are
        counted as neither success nor failure."""
        now = self._clock()
        current = int(now.timestamp() // 60)
        first = current - self._minutes + 1
        start = datetime.fromtimestamp(first * 60, UTC)
        sql = QUERIES[(self._db.dialect, owner_id is not None)]
        args: list[Any] = [start, now]
        if owner_id is not None:
            args.append(owner_id)
        completed = [0] * self._minutes
        failed = [0] * self._minutes
        for row in await self._db.fetch(sql, *args):
            index = int(row["minute"]) - first
            if not 0 <= index < self._minutes:
                continue
            if row["status"] == "COMPLETED":
                completed[index] += int(row["n"])
            elif row["status"] == "FAILED":
                failed[index] += int(row["n"])
        return Series(start, completed, failed)
