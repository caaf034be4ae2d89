"""Recording a batch of completed jobs in one UPDATE, fenced by each claim's token, which
returns the rows it changed (so the caller knows which claims held, and which jobs were
their task's own, without reading them again).

PostgreSQL receives the batch as arrays unnested into rows: one prepared statement for
any batch size, planned in microseconds. SQLite receives a UNION ALL of one-row SELECTs
(rather than a WITH … VALUES list, so that the statement starts with UPDATE and reports
its row count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskflowd.domain.enums import ExecutionStatus
from taskflowd.queue.base import Outcome
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Conn, Row

_SET = (
    "status = $1, result = v.result, error = NULL, completed_at = v.done_at, "
    "duration_ms = v.duration, updated_at = v.done_at, lease_owner = NULL, "
    "lease_expires_at = NULL"
)
_POSTGRES = (
    f"UPDATE job_executions SET {_SET} "
    "FROM unnest($3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::bigint[]) "
    "AS v(id, fence, result, done_at, duration) "
    "WHERE job_executions.id = v.id AND job_executions.fence = v.fence "
    "AND job_executions.status = $2"
)
_RETURNING = " RETURNING job_executions.id, job_executions.task_id, job_executions.job_id"
_STATUSES = (ExecutionStatus.COMPLETED.value, ExecutionStatus.PROCESSING.value)


async def record(
    conn: Conn, outcomes: Sequence[Outcome], *, postgres: bool, codec: RowCodec
) -> list[Row]:
    """Mark the jobs of `outcomes` COMPLETED where the claim's fence still holds and the job
    is still PROCESSING; returns (id, task_id, job_id) of each row changed."""
    if postgres:
        return await conn.fetch(
            _POSTGRES + _RETURNING,
            *_STATUSES,
            [o.execution_id for o in outcomes],
            [o.fence for o in outcomes],
            [codec.dump(o.result) for o in outcomes],
            [o.finished_at for o in outcomes],
            [o.duration_ms for o in outcomes],
        )
    selects = []
    args: list[Any] = []
    for o in outcomes:
        n = len(args) + 2
        selects.append(
            f"SELECT CAST(${n + 1} AS TEXT) AS id, CAST(${n + 2} AS BIGINT) AS fence, "
            f"CAST(${n + 3} AS TEXT) AS result, CAST(${n + 4} AS TIMESTAMPTZ) AS done_at, "
            f"CAST(${n + 5} AS BIGINT) AS duration"
        )
        args += [o.execution_id, o.fence, codec.dump(o.result), o.finished_at, o.duration_ms]
    return await conn.fetch(
        f"UPDATE job_executions SET {_SET} FROM ({' UNION ALL '.join(selects)}) AS v "
        "WHERE job_executions.id = v.id AND job_executions.fence = v.fence "
        f"AND job_executions.status = $2{_RETURNING}",
        *_STATUSES,
        *args,
    )
