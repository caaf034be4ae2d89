"""/api/v1/audit: the audit trail, read-only (filters, cursor pages, NDJSON export).

Declared here; the handlers, in `taskflowd.api.views.audit`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.openapi import Access, ApiRegistry, Operation
from taskflowd.audit.service import AuditService

VIEWS = "taskflowd.api.views.audit"
PATH = "/api/v1/audit"
NDJSON = "application/x-ndjson"
AUDIT_KEY = web.AppKey("taskflowd.audit", AuditService)


def install(api: ApiRegistry) -> None:
    api.add(
        Operation(
            "GET",
            PATH,
            "list_audit_events",
            "Audit events, newest first (site admins: every org; org OWNER/ADMIN: the org's)",
            "audit",
            Access.USER,
            query="views.audit.AuditQuery",
            response="views.audit.AuditList",
            streams=(NDJSON, "views.audit.AuditEventOut"),
            problems=(403,),
            etag=True,
        ),
        VIEWS,
    )
