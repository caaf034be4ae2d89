"""/api/v1/audit for the client: the audit trail, read-only (site admins and org admins)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from taskflowd.client.codec import decode
from taskflowd.client.errors import ProtocolError
from taskflowd.client.models import Page
from taskflowd.client.resources import DEFAULT_PAGE, ITER_PAGE, _Resource, every_item, page_of

PATH = "/api/v1/audit"


@dataclass(frozen=True, slots=True)
class AuditActor:
    type: str
    """user, apiKey or system"""
    id: str | None
    email: str | None


@dataclass(frozen=True, slots=True)
class AuditTarget:
    type: str | None
    id: str | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: str
    at: datetime
    actor: AuditActor
    org_id: str | None
    action: str
    target: AuditTarget
    request_id: str | None
    ip: str | None
    user_agent: str | None
    prev_hash: str
    hash: str
    changes: dict[str, Any] = field(default_factory=dict)
    """`{field: [before, after]}`, secrets redacted."""


def _filters(
    action: str | None,
    actor_id: str | None,
    target_type: str | None,
    target_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, object]:
    return {
        "action": action,
        "actorId": actor_id,
        "targetType": target_type,
        "targetId": target_id,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }


class Audit(_Resource):
    """Audit events, newest first, filtered; `export` reads every match at once."""

    async def list(
        self,
        *,
        action: str | None = None,
        actor_id: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        params = _filters(action, actor_id, target_type, target_id, since, until)
        data = await self._http.call(
            "GET", PATH, params={**params, "limit": limit, "cursor": cursor}
        )
        return page_of(AuditEvent, data)

    def iter(self, *, page_size: int = ITER_PAGE, **filters: Any) -> AsyncIterator[AuditEvent]:
        return every_item(lambda cursor: self.list(limit=page_size, cursor=cursor, **filters))

    async def export(
        self,
        *,
        action: str | None = None,
        actor_id: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[AuditEvent]:
        """Every matching event, oldest first (the NDJSON export)."""
        params = _filters(action, actor_id, target_type, target_id, since, until)
        query = urlencode({k: v for k, v in {**params, "format": "ndjson"}.items() if v})
        text = await self._http.text(f"{PATH}?{query}")
        try:
            return [decode(AuditEvent, orjson.loads(line)) for line in text.splitlines() if line]
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"the audit export is not NDJSON: {exc}") from None
