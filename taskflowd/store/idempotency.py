"""Idempotency keys recorded in the same transaction as the change they guard.

A create that carries an `Idempotency-Key` writes the key, with the response it is about
to give, as the first statement of its transaction. If the transaction commits, a retry
finds the stored response; if the process dies before the commit, nothing of it remains
and a retry simply runs again. A concurrent request with the same key waits on the key's
unique index (PostgreSQL) or the single writer (SQLite) and then finds the stored
response. A record older than its keeping time is replaced as if it were absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskflowd.domain.errors import Conflict
from taskflowd.store.base import IdempotencyClaim, IdempotentResponse, Replay
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Conn, Database, Row, Step
from taskflowd.store.errors import NothingChanged


def claim_step(claim: IdempotencyClaim, status: int, body: str, codec: RowCodec) -> Step:
    """The statement that records `claim` with its response; it changes no row (and the
    script aborts) when a fresh record for the key exists."""
    return Step(claim_sql(1), claim_args(claim, status, body, codec), required=True)


def claim_sql(first: int) -> str:
    """`claim_step`'s statement with its 8 parameters numbered from `first`: it inserts or
    replaces a stale record, and changes no row when the key holds a fresh one."""
    p = [f"${first + i}" for i in range(8)]
    return (
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, created_at, "
        f"org_id) VALUES ({p[0]}, {p[1]}, {p[2]}, {p[3]}, {p[4]}, {p[5]}, {p[7]}) "
        "ON CONFLICT (org_id, user_id, key) "
        "DO UPDATE SET fingerprint = excluded.fingerprint, status = excluded.status, "
        "body = excluded.body, created_at = excluded.created_at "
        f"WHERE idempotency_keys.created_at < {p[6]}"
    )


def claim_args(claim: IdempotencyClaim, status: int, body: str, codec: RowCodec) -> tuple[Any, ...]:
    """`claim_sql`'s parameters for `claim` and its response."""
    return (
        claim.user_id,
        claim.key,
        claim.fingerprint,
        status,
        codec.seal_text(body),
        claim.created_at,
        claim.stale_before,
        claim.org_id,
    )


async def stored_response(
    db: Database, org_id: str, user_id: str, key: str
) -> IdempotentResponse | None:
    return await _read(db, db.codec, org_id, user_id, key)


async def _read(
    conn: Conn, codec: RowCodec, org_id: str, user_id: str, key: str
) -> IdempotentResponse | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, status, body, created_at FROM idempotency_keys "
        "WHERE org_id = $3 AND user_id = $1 AND key = $2",
        user_id,
        key,
        org_id,
    )
    if row is None:
        return None
    return _response(row, codec, "")


def _response(row: Row, codec: RowCodec, prefix: str) -> IdempotentResponse:
    return IdempotentResponse(
        row[prefix + "fingerprint"],
        row[prefix + "status"],
        codec.open_text(row[prefix + "body"]),
        codec(row[prefix + "created_at"]),
    )


async def refuse_used(conn: Conn, claim: IdempotencyClaim, codec: RowCodec) -> None:
    """Raise the first request's Replay, inside the caller's transaction, when `claim`'s
    key holds a fresh record (checked first, so a replay answers before anything else)."""
    _refuse(await _read(conn, codec, claim.org_id, claim.user_id, claim.key), claim)


def _refuse(found: IdempotentResponse | None, claim: IdempotencyClaim) -> None:
    if found is not None and found.created_at >= claim.stale_before:
        raise Replay(found)


def with_key(sql: str, args: Sequence[Any], claim: IdempotencyClaim) -> tuple[str, list[Any]]:
    """PostgreSQL: `sql` (a SELECT of at most one row, with `args`) and `claim`'s record
    read in one statement, for `refuse_found`; one row even when neither exists."""
    n = len(args)
    joined = (
        f"SELECT {_KEY_COLUMNS}, found.* FROM (SELECT 1) AS one "
        f"LEFT JOIN idempotency_keys AS k ON k.org_id = ${n + 1} AND k.user_id = ${n + 2} "
        f"AND k.key = ${n + 3} LEFT JOIN ({sql}) AS found ON true"
    )
    return joined, [*args, claim.org_id, claim.user_id, claim.key]


def refuse_found(row: Row, claim: IdempotencyClaim, codec: RowCodec) -> None:
    """`refuse_used` for a row `with_key` read."""
    if row[_KEY + "created_at"] is not None:
        _refuse(_response(row, codec, _KEY), claim)


_KEY = "idempotency_"
_KEY_COLUMNS = ", ".join(
    f"k.{c} AS {_KEY}{c}" for c in ("fingerprint", "status", "body", "created_at")
)


async def record(conn: Conn, claim: IdempotencyClaim, result: Any, codec: RowCodec) -> None:
    """Record `claim` with the response to `result`, inside the caller's transaction. A
    concurrent request that recorded the key first (PostgreSQL: this statement waited for
    its commit) wins: its Replay is raised and the caller's transaction rolls back."""
    step = claim_step(claim, *claim.render(result), codec)
    if not await conn.execute(step.sql, *step.args):
        raise await _winner(conn, codec, claim)


async def winner(conn: Conn, claim: IdempotencyClaim, codec: RowCodec) -> Replay:
    """`record`'s Replay for a claim whose record a concurrent request wrote first,
    read inside the caller's transaction (which the caller then rolls back)."""
    return await _winner(conn, codec, claim)


async def replay(db: Database, claim: IdempotencyClaim) -> Replay:
    """The Replay for a claim that lost to an earlier request (read after it committed)."""
    return await _winner(db, db.codec, claim)


async def _winner(conn: Conn, codec: RowCodec, claim: IdempotencyClaim) -> Replay:
    found = await _read(conn, codec, claim.org_id, claim.user_id, claim.key)
    if found is None:
        # The earlier record was purged between the two statements: the caller may retry.
        raise Conflict("the Idempotency-Key was in use a moment ago; send the request again")
    return Replay(found)


async def hold(conn: Conn, claim: IdempotencyClaim, codec: RowCodec) -> None:
    """Record `claim` first in a transaction whose response is known only at its end
    (`keep` fills it in); raises the first request's Replay when the key is taken."""
    step = claim_step(claim, 0, "", codec)
    if not await conn.execute(step.sql, *step.args):
        raise NothingChanged(0)


async def keep(conn: Conn, claim: IdempotencyClaim, result: Any, codec: RowCodec) -> None:
    """Store the response to `result` on the key `hold` recorded in this transaction."""
    status, body = claim.render(result)
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, body = $4 "
        "WHERE user_id = $1 AND key = $2 AND org_id = $5",
        claim.user_id,
        claim.key,
        status,
        codec.seal_text(body),
        claim.org_id,
    )
