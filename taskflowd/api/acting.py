"""The org a request acts in (DESIGN §11): the org of its API key, else the org the
`X-Taskflow-Org` header names (id or slug), else the user's default org.

Naming an org one is not a member of is a 404 (`org_not_found`), so org ids and slugs
cannot be probed. A site ADMIN may name any org; without the header it reads across
orgs (and creates in its key's org or its default org).
"""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.problems import ApiError
from taskflowd.api.security import current_principal
from taskflowd.auth.principals import Principal
from taskflowd.domain.entities import DEFAULT_ORG_ID
from taskflowd.domain.enums import Role
from taskflowd.domain.orgs import Actor
from taskflowd.services.quotas import QuotaBook

ORG_HEADER = "X-Taskflow-Org"
ACTOR_KEY = web.RequestKey("taskflowd.actor", Actor)
QUOTAS_KEY = web.AppKey("taskflowd.quotas", QuotaBook)
_MAX_REF = 200


def _not_found(ref: str) -> ApiError:
    shown = ref if len(ref) <= 64 and ref.isprintable() else ref[:64].encode().hex()
    return ApiError(
        404,
        "org_not_found",
        detail=f"You are not a member of an organization {shown!r} ({ORG_HEADER}).",
    )


async def _resolve(request: web.Request, principal: Principal) -> Actor:
    user = principal.user
    ref = request.headers.get(ORG_HEADER, "").strip()
    if len(ref) > _MAX_REF:
        raise _not_found(ref)
    if principal.key_org_id is not None:
        if ref and principal.membership(ref) != principal.membership(principal.key_org_id):
            raise _not_found(ref)
        key_org = principal.membership(principal.key_org_id)
        if not ref and key_org is not None and user.role is Role.ADMIN:
            # A site admin's key writes in its org and, like the admin, reads across orgs.
            return Actor(user, key_org.org_id, key_org.role, across=True)
        ref = principal.key_org_id
    if ref:
        found = principal.membership(ref)
        if found is not None:
            return Actor(user, found.org_id, found.role)
        if principal.key_org_id is None and user.role is Role.ADMIN:
            org = await request.app[CONTEXT_KEY].store.get_org(ref)
            if org is not None:
                return Actor(user, org.id, None)
        raise _not_found(ref)
    default = user.default_org_id
    membership = principal.membership(default) if default else None
    if membership is None and principal.memberships:
        membership = principal.memberships[0]
    if user.role is Role.ADMIN:
        org_id = membership.org_id if membership else DEFAULT_ORG_ID
        return Actor(user, org_id, membership.role if membership else None, across=True)
    if membership is None:
        raise ApiError(
            403,
            "no_organization",
            detail="You belong to no organization; ask an org admin to invite you.",
        )
    return Actor(user, membership.org_id, membership.role)


async def resolve_actor(request: web.Request, principal: Principal) -> Actor:
    """The caller's `Actor`, resolved and kept on the request by the gate, the first to
    ask (`current_actor` then finds it)."""
    actor = request[ACTOR_KEY] = await _resolve(request, principal)
    return actor


async def current_actor(request: web.Request) -> Actor:
    """The authenticated caller acting in its org (resolved once per request)."""
    if ACTOR_KEY not in request:
        request[ACTOR_KEY] = await _resolve(request, current_principal(request))
    return request[ACTOR_KEY]
