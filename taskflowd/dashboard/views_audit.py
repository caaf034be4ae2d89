"""The audit trail page: events the viewer may read (site admins: every org, or the one
chosen in the switcher; an org's OWNERs and ADMINs: that org's), newest first, with
filters. Read-only, like every interface to the trail."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from aiohttp import web

from taskflowd.audit.records import AuditFilter
from taskflowd.dashboard.acting import actor
from taskflowd.dashboard.context import dashboard, render
from taskflowd.domain.errors import ValidationFailed

PAGE_SIZE = 50
MAX_TEXT = 200
MAX_CURSOR_CHARS = 512
TEXT_FILTERS = ("action", "actorId", "targetType", "targetId")
DATE_FILTERS = ("since", "until")


def _text(request: web.Request, name: str) -> str:
    value = request.query.get(name, "").strip()[:MAX_TEXT]
    return value if value.isprintable() else ""


def _day(request: web.Request, name: str) -> date | None:
    try:
        return date.fromisoformat(request.query.get(name, "")[:10])
    except ValueError:
        return None


def _start_of(day: date | None, *, after: bool = False) -> datetime | None:
    """Midnight UTC of `day` (of the day after it with `after`: "until" includes the day)."""
    if day is None or (after and day == date.max):
        return None
    return datetime.combine(day + timedelta(days=1) if after else day, time(), UTC)


async def audit_page(request: web.Request) -> web.Response:
    service = dashboard(request).audit
    who = actor(request)
    texts = {name: _text(request, name) for name in TEXT_FILTERS}
    days = {name: _day(request, name) for name in DATE_FILTERS}
    filters = AuditFilter(
        action=texts["action"] or None,
        actor_id=texts["actorId"] or None,
        target_type=texts["targetType"] or None,
        target_id=texts["targetId"] or None,
        since=_start_of(days["since"]),
        until=_start_of(days["until"], after=True),
    )
    cursor = request.query.get("cursor", "")[:MAX_CURSOR_CHARS] or None
    try:
        page = await service.page(who, filters, PAGE_SIZE, cursor)
    except ValidationFailed:  # a cursor this server never issued: start over
        cursor = None
        page = await service.page(who, filters, PAGE_SIZE, None)
    shown = {**texts, **{k: v.isoformat() if v else "" for k, v in days.items()}}
    params = {k: v for k, v in shown.items() if v}
    return render(
        request,
        "audit.html",
        {
            "events": page.items,
            "filters": shown,
            "params": params,
            "next_cursor": page.next_cursor,
            "paged": cursor is not None,
            "across": service.scope(who) is None,
        },
        section="audit",
    )
