"""The request a change comes from, for the audit trail: its id, the client's address,
its user agent and, when it authenticated with one, its API key."""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from taskflowd.api.context import CONTEXT_KEY, PRINCIPAL_KEY, REQUEST_ID_KEY
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


@web.middleware
async def audit_origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Events recorded while the handler runs carry this request's origin (innermost:
    after authentication, so an API key is known)."""
    principal = request.get(PRINCIPAL_KEY)
    key_id = principal.api_key_id if principal is not None else None
    with request.config_dict[CONTEXT_KEY].store.journal.origin(request_origin(request, key_id)):
        return await handler(request)
