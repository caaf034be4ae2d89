"""Webhook endpoints and deliveries in SQLite or PostgreSQL.

`org_id` None means every org (a site admin across orgs). Secrets and message bodies are
sealed by the database's codec when encryption keys are configured. Sending, under
leases, is `taskflowd.webhooks.leases`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskflowd.store.base import Page
from taskflowd.store.codec import RowCodec
from taskflowd.store.db import Row
from taskflowd.store.sql_common import Where
from taskflowd.webhooks.leases import DeliveryLeases
from taskflowd.webhooks.model import Delivery, Endpoint
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
_PENDING = DeliveryStatus.PENDING.value


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


class WebhookRecords(DeliveryLeases):
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
