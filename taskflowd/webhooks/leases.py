"""Sending deliveries under a lease, in batches: `claim` moves due deliveries to SENDING
with a new fence and their lease expiry as their next attempt time, and `finish` records
a batch of attempts in one transaction, each only with its claim's fence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskflowd.audit.model import AuditEvent
from taskflowd.store.db import Conn, Database, Row
from taskflowd.store.sql_common import SqlRecords
from taskflowd.webhooks.model import Attempt, Claimed
from taskflowd.webhooks.rules import (
    DeliveryStatus,
    EndpointStatus,
    Streak,
    Verdict,
    follow_streak,
)

_SENDING = DeliveryStatus.SENDING.value
_PENDING = DeliveryStatus.PENDING.value
_ACTIVE = EndpointStatus.ACTIVE.value
_DUE = f"x.status IN ('{_PENDING}', '{_SENDING}') AND x.next_attempt_at <= $1"
# $1 now, $2 active, $3 per endpoint, $4 rows: the oldest due deliveries of each active
# endpoint (at most $3, from its range of an index), the oldest $4 of them in all. On
# PostgreSQL rows another node holds are skipped.
_CANDIDATES = {
    "sqlite": (
        "SELECT d.id, d.endpoint_id FROM webhook_endpoints w JOIN webhook_deliveries d "
        "ON d.id IN (SELECT x.id FROM webhook_deliveries x WHERE x.endpoint_id = w.id "
        f"AND {_DUE} ORDER BY x.next_attempt_at LIMIT $3) "
        "WHERE w.status = $2{skip} ORDER BY d.next_attempt_at LIMIT $4"
    ),
    "postgresql": (
        "SELECT d.id, d.endpoint_id FROM webhook_endpoints w CROSS JOIN LATERAL "
        "(SELECT x.id, x.endpoint_id, x.next_attempt_at FROM webhook_deliveries x "
        f"WHERE x.endpoint_id = w.id AND {_DUE} ORDER BY x.next_attempt_at LIMIT $3 "
        "FOR UPDATE SKIP LOCKED) d WHERE w.status = $2{skip} ORDER BY d.next_attempt_at LIMIT $4"
    ),
}
_SETTLE_COLUMNS = (
    "id, fence, status, next_attempt_at, response_status, response_body, error, duration_ms"
)
_SETTLE_SET = (
    "SET status = v.status, next_attempt_at = v.next_attempt_at, lease_owner = NULL, "
    "response_status = v.response_status, response_body = v.response_body, error = v.error, "
    "duration_ms = v.duration_ms, updated_at = $1 "
)
# Every attempt of a batch in one statement, fenced; it returns the ids it wrote.
_SETTLE_PG = (
    f"UPDATE webhook_deliveries d {_SETTLE_SET}"
    "FROM unnest(CAST($2 AS TEXT[]), CAST($3 AS INTEGER[]), CAST($4 AS TEXT[]), "
    "CAST($5 AS TIMESTAMPTZ[]), CAST($6 AS INTEGER[]), CAST($7 AS TEXT[]), "
    f"CAST($8 AS TEXT[]), CAST($9 AS INTEGER[])) AS v({_SETTLE_COLUMNS}) "
    f"WHERE d.id = v.id AND d.fence = v.fence AND d.status = '{_SENDING}' RETURNING d.id"
)
_SETTLE_SQLITE = (
    f"WITH v({_SETTLE_COLUMNS}) AS (VALUES {{rows}}) UPDATE webhook_deliveries {_SETTLE_SET}"
    "FROM v WHERE webhook_deliveries.id = v.id AND webhook_deliveries.fence = v.fence "
    f"AND webhook_deliveries.status = '{_SENDING}' RETURNING id"
)
_SETTLE_WIDTH = len(_SETTLE_COLUMNS.split(", "))


def _marks(count: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


@dataclass(frozen=True, slots=True)
class Settled:
    """How an attempt leaves its delivery: `next_attempt_at` None means no further
    attempt; `disabled` says whether this attempt disabled its endpoint."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    disabled: bool

    @property
    def verdict(self) -> Verdict:
        """What the attempt means for its endpoint's failure streak (`disabled` on an
        attempt not yet recorded: the receiver answered 410)."""
        if self.status is DeliveryStatus.SUCCEEDED:
            return Verdict.SUCCEEDED
        return Verdict.GONE if self.disabled else Verdict.FAILED


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt of a claimed delivery and how it should leave the delivery."""

    claimed: Claimed
    attempt: Attempt
    settled: Settled


class DeliveryLeases(SqlRecords):
    """Claims and outcomes of deliveries in SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._pg = db.dialect == "postgresql"

    async def claim(
        self,
        owner: str,
        room: Mapping[str, int],
        limit: int,
        per_endpoint: int,
        lease_s: float,
        now: datetime,
    ) -> list[Claimed]:
        """Claim up to `limit` due deliveries of active endpoints, oldest due first, at
        most `per_endpoint` minus `room`'s in-flight count per endpoint; the cost grows
        with the active endpoints, not with their backlogs. On PostgreSQL rows another
        node is claiming are skipped, never waited for."""
        # A read first: most looks find nothing due, and need not take the writer.
        any_due = await self.db.fetchrow(
            "SELECT 1 AS due FROM webhook_deliveries "
            f"WHERE status IN ('{_PENDING}', '{_SENDING}') AND next_attempt_at <= $1 LIMIT 1",
            now,
        )
        if any_due is None:
            return []
        full = sorted(e for e, n in room.items() if n >= per_endpoint)
        skip = f" AND w.id NOT IN ({_marks(len(full), 5)})" if full else ""
        async with self.db.transaction() as conn:
            due = await conn.fetch(
                _CANDIDATES[self.db.dialect].format(skip=skip),
                now,
                _ACTIVE,
                per_endpoint,
                limit + sum(room.values()),
                *full,
            )
            chosen = _choose(due, room, limit, per_endpoint)
            if not chosen:
                return []
            claimed = await conn.fetch(
                "UPDATE webhook_deliveries SET status = $1, fence = fence + 1, "
                "attempts = attempts + 1, lease_owner = $2, next_attempt_at = $3, "
                f"last_attempt_at = $4, updated_at = $4 WHERE id IN ({_marks(len(chosen), 5)}) "
                "RETURNING id, endpoint_id, message_id, event_type, fence, attempts, body, "
                "created_at",
                _SENDING,
                owner,
                now + timedelta(seconds=lease_s),
                now,
                *chosen,
            )
            targets = await self._targets(conn, {r["endpoint_id"] for r in claimed}, now)
        return [self._claimed(r, targets[r["endpoint_id"]]) for r in claimed]

    async def _targets(
        self, conn: Conn, endpoint_ids: set[str], now: datetime
    ) -> dict[str, tuple[str, tuple[str, ...]]]:
        ids = sorted(endpoint_ids)
        found = await conn.fetch(
            "SELECT id, url, secret, previous_secret, previous_secret_until "
            f"FROM webhook_endpoints WHERE id IN ({_marks(len(ids))})",
            *ids,
        )
        targets = {}
        for row in found:
            keys = [self._t.open_text(row["secret"])]
            until = row["previous_secret_until"]
            if row["previous_secret"] is not None and until is not None and self._t(until) > now:
                keys.append(self._t.open_text(row["previous_secret"]))
            targets[row["id"]] = (row["url"], tuple(keys))
        return targets

    def _claimed(self, row: Row, target: tuple[str, tuple[str, ...]]) -> Claimed:
        return Claimed(
            id=row["id"],
            endpoint_id=row["endpoint_id"],
            message_id=row["message_id"],
            event_type=row["event_type"],
            fence=row["fence"],
            attempts=row["attempts"],
            body=self._t.open_text(row["body"]).encode(),
            url=target[0],
            secrets=target[1],
            created_at=self._t(row["created_at"]),
        )

    async def finish(
        self, outcomes: Sequence[Outcome], now: datetime, disable_before: datetime
    ) -> list[Settled | None]:
        """Record a batch of attempts in one transaction, each as its `settled` says, and
        follow each endpoint's failure streak through them in the order given (a success
        ends it; a 410, or failing since before `disable_before`, disables the endpoint).
        Returns, per outcome, how it left its delivery (`disabled` true for the one
        attempt that disabled its endpoint), or None when its claim was lost (nothing
        written for it). Disabling is audited, in the same transaction, as the system's
        `webhook.disabled`."""
        if not outcomes:
            return []
        ids = sorted({o.claimed.endpoint_id for o in outcomes})
        lock = " FOR UPDATE" if self._pg else ""
        audited: list[AuditEvent] = []
        async with self.db.transaction() as conn:
            # Endpoints first, in id order, as deleting an endpoint takes its rows.
            endpoints = await conn.fetch(
                "SELECT id, org_id, status, failing_since FROM webhook_endpoints "
                f"WHERE id IN ({_marks(len(ids))}) ORDER BY id{lock}",
                *ids,
            )
            written = await self._settle(conn, outcomes, now)
            mine: dict[str, list[int]] = defaultdict(list)
            for index, outcome in enumerate(outcomes):
                if outcome.claimed.id in written:
                    mine[outcome.claimed.endpoint_id].append(index)
            streaks: dict[str, Streak] = {}
            for row in endpoints:
                known = None if row["failing_since"] is None else self._t(row["failing_since"])
                verdicts = [outcomes[i].settled.verdict for i in mine[row["id"]]]
                active = row["status"] == _ACTIVE
                streak = follow_streak(active, known, verdicts, now, disable_before)
                if streak != Streak(known, None, None):
                    streaks[row["id"]] = streak
            audited = await self._follow(conn, endpoints, streaks, now)
        self.journal.appended(audited)
        disabling = {
            mine[e][s.disabled_by] for e, s in streaks.items() if s.disabled_by is not None
        }
        return [
            Settled(o.settled.status, o.settled.next_attempt_at, i in disabling)
            if o.claimed.id in written
            else None
            for i, o in enumerate(outcomes)
        ]

    async def _settle(self, conn: Conn, outcomes: Sequence[Outcome], now: datetime) -> set[str]:
        """Write each attempt whose claim still holds; the ids of those written."""
        rows = [
            (
                o.claimed.id,
                o.claimed.fence,
                o.settled.status.value,
                o.settled.next_attempt_at,
                o.attempt.status,
                o.attempt.body,
                o.attempt.error,
                o.attempt.duration_ms,
            )
            for o in outcomes
        ]
        if self._pg:
            found = await conn.fetch(_SETTLE_PG, now, *(list(c) for c in zip(*rows, strict=True)))
        else:
            marks = ", ".join(
                f"({_marks(_SETTLE_WIDTH, 2 + i * _SETTLE_WIDTH)})" for i in range(len(rows))
            )
            values = [value for row in rows for value in row]
            found = await conn.fetch(_SETTLE_SQLITE.format(rows=marks), now, *values)
        return {r["id"] for r in found}

    async def _follow(
        self, conn: Conn, endpoints: Sequence[Row], streaks: Mapping[str, Streak], now: datetime
    ) -> list[AuditEvent]:
        """Write the endpoints' new streaks, and audit those disabled."""
        starts: dict[datetime | None, list[str]] = defaultdict(list)
        reasons: dict[str, list[str]] = defaultdict(list)
        for endpoint_id, streak in sorted(streaks.items()):
            starts[streak.failing_since].append(endpoint_id)
            if streak.disabled_reason is not None:
                reasons[streak.disabled_reason].append(endpoint_id)
        for since, ids in starts.items():
            await conn.execute(
                "UPDATE webhook_endpoints SET failing_since = $1 "
                f"WHERE id IN ({_marks(len(ids), 2)})",
                since,
                *ids,
            )
        for reason, ids in reasons.items():
            await conn.execute(
                "UPDATE webhook_endpoints SET status = $1, disabled_reason = $2, "
                f"updated_at = $3 WHERE id IN ({_marks(len(ids), 4)})",
                EndpointStatus.DISABLED.value,
                reason,
                now,
                *ids,
            )
        orgs = {r["id"]: r["org_id"] for r in endpoints}
        events = [
            self.journal.event(
                "webhook.disabled",
                None,
                orgs[endpoint_id],
                ("webhook", endpoint_id),
                {
                    "status": [_ACTIVE, EndpointStatus.DISABLED.value],
                    "disabledReason": [None, reason],
                },
            )
            for reason, ids in reasons.items()
            for endpoint_id in ids
        ]
        return await self.journal.append(conn, events) if events else []


def _choose(
    due: Sequence[Row], room: Mapping[str, int], limit: int, per_endpoint: int
) -> list[str]:
    """Ids of the due rows to claim: at most `limit`, none past an endpoint's share."""
    taken = dict(room)
    chosen: list[str] = []
    for row in due:
        endpoint = row["endpoint_id"]
        if taken.get(endpoint, 0) >= per_endpoint:
            continue
        taken[endpoint] = taken.get(endpoint, 0) + 1
        chosen.append(row["id"])
        if len(chosen) >= limit:
            break
    return chosen
