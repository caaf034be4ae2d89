"""/api/v1/audit: the audit trail, read-only (filters, cursor pages, NDJSON export).

The handlers; the routes are declared in `taskflowd.api.routes.audit`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from aiohttp import web
from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema

from taskflowd.api.acting import current_actor
from taskflowd.api.responses import read_response
from taskflowd.api.routes.audit import AUDIT_KEY, NDJSON
from taskflowd.api.schemas import LINE, ListQuery, ResponseModel
from taskflowd.api.validation import parse_query
from taskflowd.audit.records import AuditFilter

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def _moment(value: object) -> datetime:
    """An ISO 8601 time with an offset, from 1970 on (never a bare number: pydantic
    would read `0.5` as seconds since the epoch)."""
    if not isinstance(value, str) or len(value) > MAX_MOMENT:
        raise ValueError("must be an ISO 8601 time with an offset")
    try:
        parsed = datetime.fromisoformat(value.upper())
        moment = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise ValueError("must be an ISO 8601 time with an offset, e.g. 2026-01-31T00:00:00Z")
    if moment < _EARLIEST:
        raise ValueError("must be 1970 or later")
    return moment


MAX_MOMENT = 64
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=LINE)]
Moment = Annotated[
    datetime,
    BeforeValidator(_moment),
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": MAX_MOMENT}),
]


class AuditQuery(ListQuery):
    action: Text | None = Field(default=None, description="e.g. task.updated")
    actor_id: Text | None = Field(default=None, description="A user's or an API key's id")
    target_type: Text | None = Field(default=None, description="e.g. task, user, apiKey")
    target_id: Text | None = None
    since: Moment | None = Field(default=None, description="Events at or after this time")
    until: Moment | None = Field(default=None, description="Events before this time")
    format: Literal["json", "ndjson"] = Field(
        default="json",
        description=f"ndjson: every matching event, oldest first, one per line ({NDJSON}); "
        "limit and cursor then do not apply",
    )


class AuditActorOut(ResponseModel):
    type: Literal["user", "apiKey", "system"]
    id: str | None
    email: str | None


class AuditTargetOut(ResponseModel):
    type: str | None
    id: str | None


class AuditEventOut(ResponseModel):
    id: str
    at: datetime
    actor: AuditActorOut
    org_id: str | None
    action: str
    target: AuditTargetOut
    changes: dict[str, list[Any]] = Field(
        description="{field: [before, after]} of the changed fields; secrets redacted"
    )
    request_id: str | None
    ip: str | None
    user_agent: str | None
    prev_hash: str = Field(description="The hash of the event before this one in the chain")
    hash: str = Field(description="SHA-256 over prevHash, a newline and the canonical event")


class AuditList(ResponseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


def _filters(query: AuditQuery) -> AuditFilter:
    return AuditFilter(
        action=query.action,
        actor_id=query.actor_id,
        target_type=query.target_type,
        target_id=query.target_id,
        since=query.since,
        until=query.until,
    )


async def list_audit_events(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, AuditQuery)
    actor = await current_actor(request)
    service = request.app[AUDIT_KEY]
    if query.format == "ndjson":
        events = service.export(actor, _filters(query))  # refuses before the response starts
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        async for event in events:
            await response.write(orjson.dumps(event.to_json()) + b"\n")
        await response.write_eof()
        return response
    page = await service.page(actor, _filters(query), query.limit, query.cursor)
    body = {"items": [e.to_json() for e in page.items], "nextCursor": page.next_cursor}
    return read_response(request, orjson.dumps(body))
