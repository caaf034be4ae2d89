"""PostgreSQL: the writes of runs in one statement and one round trip, not one each: the
executions, the Idempotency-Key's record and the audit events of the runs.

The key's record is written first and guards the rest: when the key holds a fresh record
(a concurrent request with the same key committed first; the statement waited for it on
the key's unique index), no event is linked and the caller rolls the transaction back
and replays that request's response. The audit chain's head is taken after the key, as
the separate statements took it, and held to the commit: what the transaction does after
this statement must not wait for row locks (`store.base.Then`).
"""

from __future__ import annotations

from collections.abc import Sequence

from taskflowd.audit import journal
from taskflowd.audit.model import AuditEvent
from taskflowd.domain.entities import Execution
from taskflowd.store import idempotency, rows
from taskflowd.store.base import IdempotencyClaim
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Conn

CONFLICT = " ON CONFLICT (task_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
INSERT_ARRAYS = (
    f"INSERT INTO job_executions ({rows.EXECUTION_INSERT_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(rows.EXECUTION_INSERT_TYPES, 1))
    + ")"
    + CONFLICT
)
"""A batch of runs in one statement, one array per column (`executemany` would execute
the INSERT once per run)."""
_WIDTH = len(rows.EXECUTION_INSERT_TYPES)


def statement(keyed: bool, audited: bool) -> str:
    """The runs' INSERT (`INSERT_ARRAYS`), with the key's record (`keyed`) and the audit
    events (`audited`); its one row or its rows (one per event) hold `keyed`, the count
    of key records written, and each event's `seq, prev_hash, hash`."""
    ctes = [f"runs AS ({INSERT_ARRAYS})"]
    first = _WIDTH + 1
    guard = ""
    if keyed:
        ctes.append(f"keyed AS ({idempotency.claim_sql(first)} RETURNING 1)")
        first += 8
        guard = " AND EXISTS (SELECT 1 FROM keyed)"
    keys = "(SELECT COUNT(*) FROM keyed)" if keyed else "1"
    if not audited:
        return f"WITH {', '.join(ctes)} SELECT {keys} AS keyed"
    chain, insert = journal.pg_chain(first, guard)
    ctes += [chain, f"linked AS ({insert})"]
    return (
        f"WITH RECURSIVE {', '.join(ctes)} SELECT {keys} AS keyed, linked.* "
        "FROM (SELECT 1) AS one LEFT JOIN linked ON TRUE"
    )


async def write(
    conn: Conn,
    runs: Sequence[Execution],
    claim: IdempotencyClaim | None,
    events: Sequence[AuditEvent],
    codec: RowCodec,
) -> list[AuditEvent]:
    """Insert `runs` (none of them with an idempotency key of its own), record `claim`
    with the response to `runs` and link `events`, inside the caller's transaction;
    returns the events linked. Raises the first request's Replay when `claim`'s key holds
    a fresh record: the caller's transaction must then roll back."""
    values = [rows.execution_insert_values(r, None, codec) for r in runs]
    args = [list(column) for column in zip(*values, strict=True)]
    if claim is not None:
        args += idempotency.claim_args(claim, *claim.render(list(runs)), codec)
    if events:
        args += journal.pg_chain_args(events)
    found = await conn.fetch(statement(claim is not None, bool(events)), *args)
    if not found[0]["keyed"]:
        assert claim is not None
        raise await idempotency.winner(conn, claim, codec)
    if not events:
        return []
    if len(found) != len(events):
        raise RuntimeError("the audit chain has no head row; run the migrations")
    return journal.pg_linked(events, found)
