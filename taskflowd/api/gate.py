"""The one middleware between the front and the handlers.

It does, in one pass and once per request, what each registered `Operation` declares:
the rate limit per client address of public routes; for USER and ADMIN routes the
bearer authentication, the user's requests in flight on this node and their rate, the
role, and the org's `api_limit_per_min`; and, for every request but the probes (public
routes without a rate limit, which record nothing), the origin that audit events
recorded while it is answered carry. One middleware instead of three saves each
request two coroutine layers and two route look-ups.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from taskflowd.api.acting import QUOTAS_KEY, resolve_actor
from taskflowd.api.context import CONTEXT_KEY, ApiContext
from taskflowd.api.openapi import REGISTRY_KEY, Access, Operation
from taskflowd.api.origin import request_origin
from taskflowd.api.problems import ApiError
from taskflowd.api.security import (
    IN_FLIGHT_KEY,
    apply_rate_limit,
    bearer_principal,
    client_address,
    require_role,
)
from taskflowd.auth.principals import Principal
from taskflowd.domain.enums import Role


@web.middleware
async def gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    operation = app[REGISTRY_KEY].lookup(request)
    if operation is None or operation.access is Access.PUBLIC:
        if operation is not None and not operation.rate_limited:
            return await handler(request)  # a probe (/health, /ready, /metrics): it records nothing
        ctx = app[CONTEXT_KEY]
        await _limit_address(request, ctx)
        with ctx.store.journal.origin(request_origin(request)):
            return await handler(request)
    ctx = app[CONTEXT_KEY]
    principal = await _admit(request, ctx, operation)
    with ctx.store.journal.origin(request_origin(request, principal.api_key_id)):
        if not operation.rate_limited:
            return await handler(request)
        in_flight = app[IN_FLIGHT_KEY]
        user_id = principal.user.id
        count = in_flight.enter(user_id)
        try:
            await _limit(request, ctx, operation, principal, count)
            return await handler(request)
        finally:
            in_flight.leave(user_id)


async def _limit_address(request: web.Request, ctx: ApiContext) -> None:
    limit = ctx.settings.auth.api_limit_per_min
    await apply_rate_limit(request, f"addr:{client_address(request)}", limit)


async def _admit(request: web.Request, ctx: ApiContext, operation: Operation) -> Principal:
    """The authenticated caller (a 401 counts against its address's limit), whose role
    is checked at once on a route that is not rate limited."""
    try:
        principal = await bearer_principal(request)
    except ApiError:
        if operation.rate_limited:
            await _limit_address(request, ctx)
        raise
    if not operation.rate_limited and operation.access is Access.ADMIN:
        require_role(principal.user, Role.ADMIN)
    return principal


async def _limit(
    request: web.Request, ctx: ApiContext, operation: Operation, principal: Principal, count: int
) -> None:
    """The bound on requests in flight, the user's rate, the role, then the org's rate
    (a request whose org cannot be resolved is left to its handler, which answers why)."""
    auth = ctx.settings.auth
    if count > auth.api_max_in_flight:
        raise ApiError(
            429,
            "too_many_in_flight",
            detail=f"You have {auth.api_max_in_flight} requests in flight already "
            "(auth.api_max_in_flight); wait for their answers, or send a batch.",
            headers={hdrs.RETRY_AFTER: "1"},
        )
    user = principal.user
    await apply_rate_limit(request, f"user:{user.id}", auth.api_limit_per_min)
    if operation.access is Access.ADMIN:
        require_role(user, Role.ADMIN)
    try:
        actor = await resolve_actor(request, principal)
    except ApiError:
        return
    limit = (await request.app[QUOTAS_KEY].of(actor.org_id)).api_limit_per_min or 0
    if limit:
        await apply_rate_limit(
            request,
            f"org:{actor.org_id}",
            limit,
            code="org_rate_limited",
            what="requests of this organization (quota api_limit_per_min)",
        )
