"""Webhook endpoints and deliveries in SQLite or PostgreSQL.

`org_id` None means every org (a site admin across orgs). Secrets and message bodies are
sealed by the database's codec when encryption keys are configured. A delivery is sent
under a lease: `claim` moves it to SENDING with a new fence and its lease expiry as its
next attempt time, and `finish` records an attempt only with the claim's fence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskflowd.audit.model import AuditEvent
from taskflowd.store.base import Page
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Conn, Database, Row
from taskflowd.store.sql_common import SqlRecords, Where
from taskflowd.webhooks.model import Attempt, Claimed, Delivery, Endpoint
from taskflowd.webhooks.rules import (
    DeliveryStatus,
    EndpointStatus,
    events_column,
    events_from_column,
)

ENDPOINT_COLUMNS = (
    "id, org_id, url, description, events, task_id, workflow_id, status, disabled_reason, "
    "failing_since, previous_secret_until, created_by, created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "id, endpoint_id, message_id, event_type, status, attempts, next_attempt_at, "
    "response_status, response_body, error, duration_ms, last_attempt_at, created_at, "
    "updated_at"
)
_SENDING = DeliveryStatus.SENDING.value
_PENDING = DeliveryStatus.PENDING.value
_ACTIVE = EndpointStatus.ACTIVE.value
_CANDIDATES_PER_SLOT = 4


def _time(t: RowCodec, value: Any) -> datetime | None:
    return None if value is None else t(value)


def endpoint_from_row(row: Row, t: RowCodec) -> Endpoint:
    return Endpoint(
        id=row["id"],
        org_id=row["org_id"],
        url=row["url"],
        description=row["description"],
        events=tuple(events_from_column(row["events"])),
        task_id=row["task_id"],
        workflow_id=row["workflow_id"],
        status=EndpointStatus(row["status"]),
        disabled_reason=row["disabled_reason"],
        failing_since=_time(t, row["failing_since"]),
        previous_secret_until=_time(t, row["previous_secret_until"]),
        created_by=row["created_by"],
        created_at=t(row["created_at"]),
        updated_at=t(row["updated_at"]),
    )


def delivery_from_row(row: Row, t: RowCodec) -> Delivery:
    return Delivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        message_id=row["message_id"],
        event_type=row["event_type"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=_time(t, row["next_attempt_at"]),
        response_status=row["response_status"],
        response_body=row["response_body"],
        error=row["error"],
        duration_ms=row["duration_ms"],
        last_attempt_at=_time(t, row["last_attempt_at"]),
        created_at=t(row["created_at"]),
        updated_at=t(row["updated_at"]),
    )


def _marks(count: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


@dataclass(frozen=True, slots=True)
class Settled:
    """How `finish` left a delivery: `next_attempt_at` None means no further attempt;
    `disabled` says whether this attempt disabled its endpoint."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    disabled: bool


class WebhookRecords(SqlRecords):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._pg = db.dialect == "postgresql"

    # --- endpoints ---------------------------------------------------------------------
    async def create(self, endpoint: Endpoint, secret: str) -> Endpoint:
        e = endpoint
        await self.db.execute(
            f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}, secret) VALUES ({_marks(15)})",
            e.id,
            e.org_id,
            e.url,
            e.description,
            events_column(e.events),
            e.task_id,
            e.workflow_id,
            e.status.value,
            e.disabled_reason,
            e.failing_since,
            e.previous_secret_until,
            e.created_by,
            e.created_at,
            e.updated_at,
            self._t.seal_text(secret),
        )
        return endpoint

    @staticmethod
    def _one(endpoint_id: str, org_id: str | None) -> Where:
        where = Where()
        where.add("id = {}", endpoint_id)
        if org_id is not None:
            where.add("org_id = {}", org_id)
        return where

    async def get(self, endpoint_id: str, org_id: str | None) -> Endpoint | None:
        where = self._one(endpoint_id, org_id)
        row = await self.db.fetchrow(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints{where.sql()}", *where.args
        )
        return None if row is None else endpoint_from_row(row, self._t)

    async def list_endpoints(
        self, org_id: str | None, limit: int, cursor: str | None
    ) -> Page[Endpoint]:
        where = Where()
        if org_id is not None:
            where.add("org_id = {}", org_id)
        where.after(cursor)
        return await self._page(
            "webhook_endpoints", ENDPOINT_COLUMNS, where, limit, endpoint_from_row
        )

    async def exists(self, table: str, record_id: str, org_id: str) -> bool:
        """Whether a live task or workflow (`table`) of the org has this id."""
        if table not in ("tasks", "workflows"):
            raise ValueError(f"not a table of filter targets: {table}")
        row = await self.db.fetchrow(
            f"SELECT 1 AS ok FROM {table} WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
            record_id,
            org_id,
        )
        return row is not None

    async def count(self, org_id: str) -> int:
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM webhook_endpoints WHERE org_id = $1", org_id
        )
        return 0 if row is None else int(row["n"])

    async def update(self, e: Endpoint) -> Endpoint | None:
        changed = await self.db.execute(
            "UPDATE webhook_endpoints SET url = $2, description = $3, events = $4, "
            "task_id = $5, workflow_id = $6, status = $7, disabled_reason = $8, "
            "failing_since = $9, updated_at = $10 WHERE id = $1 AND org_id = $11",
            e.id,
            e.url,
            e.description,
            events_column(e.events),
            e.task_id,
            e.workflow_id,
            e.status.value,
            e.disabled_reason,
            e.failing_since,
            e.updated_at,
            e.org_id,
        )
        return e if changed else None

    async def rotate(
        self, endpoint_id: str, org_id: str, secret: str, until: datetime, at: datetime
    ) -> bool:
        """Sign with `secret` from now on, and with the current secret too until `until`."""
        changed = await self.db.execute(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $1, "
            "previous_secret_until = $2, updated_at = $3 WHERE id = $4 AND org_id = $5",
            self._t.seal_text(secret),
            until,
            at,
            endpoint_id,
            org_id,
        )
        return changed > 0

    async def delete(self, endpoint_id: str, org_id: str | None) -> bool:
        """Delete the endpoint and its delivery log; unsent deliveries are dropped."""
        where = self._one(endpoint_id, org_id)
        async with self.db.transaction() as conn:
            changed = await conn.execute(f"DELETE FROM webhook_endpoints{where.sql()}", *where.args)
            if changed:
                await conn.execute(
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id
                )
        return changed > 0

    # --- deliveries --------------------------------------------------------------------
    async def add_delivery(
        self, delivery_id: str, endpoint: Endpoint, message_id: str, body: str, at: datetime
    ) -> Delivery | None:
        """Queue one message (a ping; `body` plain JSON) to one endpoint; None when the
        endpoint is gone."""
        async with self.db.transaction() as conn:
            found = await conn.fetchrow(
                "SELECT id FROM webhook_endpoints WHERE id = $1", endpoint.id
            )
            if found is None:
                return None
            await conn.execute(
                "INSERT INTO webhook_deliveries (id, endpoint_id, org_id, message_id, "
                "event_type, body, status, attempts, fence, next_attempt_at, created_at, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $8, $8)",
                delivery_id,
                endpoint.id,
                endpoint.org_id,
                message_id,
                "ping",
                self._t.seal_text(body),
                _PENDING,
                at,
            )
            row = await conn.fetchrow(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1", delivery_id
            )
        return None if row is None else delivery_from_row(row, self._t)

    async def list_deliveries(
        self, endpoint_id: str, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        where = Where()
        where.add("endpoint_id = {}", endpoint_id)
        where.after(cursor)
        return await self._page(
            "webhook_deliveries", DELIVERY_COLUMNS, where, limit, delivery_from_row
        )

    async def get_delivery(self, delivery_id: str, endpoint_id: str) -> Delivery | None:
        row = await self.db.fetchrow(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2",
            delivery_id,
            endpoint_id,
        )
        return None if row is None else delivery_from_row(row, self._t)

    async def redeliver(self, delivery_id: str, endpoint_id: str, at: datetime) -> bool:
        """Queue a finished delivery again (same message id); False while it is queued or
        being sent, or when it does not exist."""
        changed = await self.db.execute(
            "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, updated_at = $2 "
            "WHERE id = $3 AND endpoint_id = $4 AND status IN ($5, $6)",
            _PENDING,
            at,
            delivery_id,
            endpoint_id,
            DeliveryStatus.SUCCEEDED.value,
            DeliveryStatus.FAILED.value,
        )
        return changed > 0

    # --- sending -----------------------------------------------------------------------
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
        most `per_endpoint` minus `room`'s in-flight count per endpoint. On PostgreSQL
        rows another node is claiming are skipped, never waited for."""
        # A read first: most looks find nothing due, and need not take the writer.
        any_due = await self.db.fetchrow(
            "SELECT 1 AS due FROM webhook_deliveries "
            f"WHERE status IN ('{_PENDING}', '{_SENDING}') AND next_attempt_at <= $1 LIMIT 1",
            now,
        )
        if any_due is None:
            return []
        full = sorted(e for e, n in room.items() if n >= per_endpoint)
        skip = f" AND d.endpoint_id NOT IN ({_marks(len(full), 4)})" if full else ""
        lock = " FOR UPDATE OF d SKIP LOCKED" if self._pg else ""
        async with self.db.transaction() as conn:
            due = await conn.fetch(
                "SELECT d.id, d.endpoint_id FROM webhook_deliveries d "
                "JOIN webhook_endpoints w ON w.id = d.endpoint_id "
                f"WHERE d.status IN ('{_PENDING}', '{_SENDING}') AND d.next_attempt_at <= $1 "
                f"AND w.status = $2{skip} ORDER BY d.next_attempt_at LIMIT $3{lock}",
                now,
                _ACTIVE,
                limit * _CANDIDATES_PER_SLOT,
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
        self,
        claimed: Claimed,
        attempt: Attempt,
        settled: Settled,
        now: datetime,
        disable_before: datetime,
    ) -> Settled | None:
        """Record one attempt of a claimed delivery as `settled` says and update its
        endpoint's failure streak, disabling it (410, or failing since before
        `disable_before`); None when the claim was lost (nothing written). Disabling is
        audited, in the same transaction, as the system's `webhook.disabled`."""
        audited: list[AuditEvent] = []
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, "
                "lease_owner = NULL, response_status = $3, response_body = $4, error = $5, "
                "duration_ms = $6, updated_at = $7 WHERE id = $8 AND fence = $9 AND status = $10",
                settled.status.value,
                settled.next_attempt_at,
                attempt.status,
                attempt.body,
                attempt.error,
                attempt.duration_ms,
                now,
                claimed.id,
                claimed.fence,
                _SENDING,
            )
            if not changed:
                return None
            if settled.status is DeliveryStatus.SUCCEEDED:
                await conn.execute(
                    "UPDATE webhook_endpoints SET failing_since = NULL "
                    "WHERE id = $1 AND failing_since IS NOT NULL",
                    claimed.endpoint_id,
                )
                return settled
            if settled.disabled:
                reason = "the receiver answered 410 Gone"
                disabled = await self._disable(conn, claimed.endpoint_id, reason, now)
            else:
                await conn.execute(
                    "UPDATE webhook_endpoints SET failing_since = $1 "
                    "WHERE id = $2 AND failing_since IS NULL",
                    now,
                    claimed.endpoint_id,
                )
                reason = "every delivery failed for too long"
                disabled = await conn.execute(
                    "UPDATE webhook_endpoints SET status = $1, disabled_reason = $2, "
                    "updated_at = $3 WHERE id = $4 AND status = $5 AND failing_since <= $6",
                    EndpointStatus.DISABLED.value,
                    reason,
                    now,
                    claimed.endpoint_id,
                    _ACTIVE,
                    disable_before,
                )
            if disabled:
                audited = await self._audit_disabled(conn, claimed.endpoint_id, reason)
        self.journal.appended(audited)
        if settled.disabled:
            return settled
        return Settled(settled.status, settled.next_attempt_at, disabled > 0)

    async def _audit_disabled(self, conn: Conn, endpoint_id: str, reason: str) -> list[AuditEvent]:
        row = await conn.fetchrow("SELECT org_id FROM webhook_endpoints WHERE id = $1", endpoint_id)
        changes = {
            "status": [_ACTIVE, EndpointStatus.DISABLED.value],
            "disabledReason": [None, reason],
        }
        event = self.journal.event(
            "webhook.disabled",
            None,
            None if row is None else row["org_id"],
            ("webhook", endpoint_id),
            changes,
        )
        return await self.journal.append(conn, [event])

    async def _disable(self, conn: Conn, endpoint_id: str, reason: str, at: datetime) -> int:
        return await conn.execute(
            "UPDATE webhook_endpoints SET status = $1, disabled_reason = $2, updated_at = $3 "
            "WHERE id = $4 AND status = $5",
            EndpointStatus.DISABLED.value,
            reason,
            at,
            endpoint_id,
            _ACTIVE,
        )


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
