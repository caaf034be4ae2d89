"""The request a change comes from, for the audit trail: its id, the client's address,
its user agent and, when it authenticated with one, its API key (set around each handler
by `taskflowd.api.gate`)."""

from __future__ import annotations

from aiohttp import hdrs, web

from taskflowd.api.context import REQUEST_ID_KEY
from taskflowd.api.security import client_address
from taskflowd.audit.model import Origin

MAX_USER_AGENT = 512


def request_origin(request: web.Request, api_key_id: str | None = None) -> Origin:
    agent = request.headers.get(hdrs.USER_AGENT, "")[:MAX_USER_AGENT]
    return Origin(
        request_id=request.get(REQUEST_ID_KEY),
        ip=client_address(request),
        user_agent=agent if agent.isprintable() and agent else None,
        api_key_id=api_key_id,
    )
