"""/api/v1/orgs: organizations (create, list, read, rename, quotas, delete) and their
members (invite by email, change role, remove).

The handlers; the routes are declared in `taskflowd.api.routes.orgs`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import Field, StringConstraints

from taskflowd.api.responses import json_bytes, no_content, read_response
from taskflowd.api.routes.orgs import ORGS_KEY
from taskflowd.api.schemas import LINE, Email, ListQuery, RequestModel, ResponseModel
from taskflowd.api.security import current_user
from taskflowd.api.validation import parse_body, parse_query
from taskflowd.domain.orgs import MAX_NAME_LENGTH, MAX_QUOTA, QUOTA_NAMES, Member, OrgRole
from taskflowd.services.orgs import OrgService, OrgView

OrgName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=LINE)]
Quota = Annotated[int, Field(ge=0, le=MAX_QUOTA)]


class QuotasOut(ResponseModel):
    max_tasks: int = Field(description="Live tasks at most; 0: unlimited")
    max_workflows: int
    max_running_jobs: int = Field(description="Jobs running at once across the cluster")
    api_limit_per_min: int = Field(description="API requests per minute of all members")


class QuotasPatch(RequestModel):
    """Overrides of the configured defaults (site admins only); null restores the default."""

    max_tasks: Quota | None = None
    max_workflows: Quota | None = None
    max_running_jobs: Quota | None = None
    api_limit_per_min: Quota | None = None


class OrgCreate(RequestModel):
    name: OrgName


class OrgPatch(RequestModel):
    name: OrgName | None = None
    quotas: QuotasPatch | None = None


class OrgOut(ResponseModel):
    id: str
    slug: str = Field(description="Also accepted wherever the org's id is")
    name: str
    role: OrgRole | None = Field(description="The caller's role in the org")
    quotas: QuotasOut = Field(description="The quotas in force")
    created_at: datetime
    updated_at: datetime


class OrgList(ResponseModel):
    items: list[OrgOut]
    next_cursor: str | None


class MemberInvite(RequestModel):
    email: Email = Field(description="The email address of an existing user")
    role: OrgRole = OrgRole.MEMBER


class MemberPatch(RequestModel):
    role: OrgRole


class MemberOut(ResponseModel):
    user_id: str
    email: str
    first_name: str
    last_name: str
    role: OrgRole
    created_at: datetime


class MemberList(ResponseModel):
    items: list[MemberOut]
    next_cursor: str | None


def _org(view: OrgView) -> dict[str, Any]:
    org, quotas = view.org, view.quotas
    return {
        "id": org.id,
        "slug": org.slug,
        "name": org.name,
        "role": None if view.role is None else view.role.value,
        "quotas": {
            "maxTasks": quotas.max_tasks,
            "maxWorkflows": quotas.max_workflows,
            "maxRunningJobs": quotas.max_running_jobs,
            "apiLimitPerMin": quotas.api_limit_per_min,
        },
        "createdAt": org.created_at,
        "updatedAt": org.updated_at,
    }


def _member(member: Member) -> dict[str, Any]:
    return {
        "userId": member.user_id,
        "email": member.email,
        "firstName": member.first_name,
        "lastName": member.last_name,
        "role": member.role.value,
        "createdAt": member.created_at,
    }


def _service(request: web.Request) -> OrgService:
    return request.app[ORGS_KEY]


async def list_orgs(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await _service(request).list(current_user(request), query.limit, query.cursor)
    body = {"items": [_org(v) for v in page.items], "nextCursor": page.next_cursor}
    return read_response(request, orjson.dumps(body))


async def create_org(request: web.Request) -> web.Response:
    body = await parse_body(request, OrgCreate)
    view = await _service(request).create(current_user(request), body.name)
    return json_bytes(orjson.dumps(_org(view)), status=201)


async def get_org(request: web.Request) -> web.Response:
    view = await _service(request).get(current_user(request), request.match_info["id"])
    return read_response(request, orjson.dumps(_org(view)))


async def update_org(request: web.Request) -> web.Response:
    body = await parse_body(request, OrgPatch)
    quotas = None
    if body.quotas is not None:
        given = body.quotas.model_fields_set
        quotas = {name: getattr(body.quotas, name) for name in QUOTA_NAMES if name in given}
    view = await _service(request).update(
        current_user(request), request.match_info["id"], body.name, quotas
    )
    return json_bytes(orjson.dumps(_org(view)))


async def delete_org(request: web.Request) -> web.Response:
    await _service(request).delete(current_user(request), request.match_info["id"])
    return no_content()


async def list_members(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await _service(request).members(
        current_user(request), request.match_info["id"], query.limit, query.cursor
    )
    body = {"items": [_member(m) for m in page.items], "nextCursor": page.next_cursor}
    return read_response(request, orjson.dumps(body))


async def invite_member(request: web.Request) -> web.Response:
    body = await parse_body(request, MemberInvite)
    member = await _service(request).invite(
        current_user(request), request.match_info["id"], body.email, body.role
    )
    return json_bytes(orjson.dumps(_member(member)), status=201)


async def update_member(request: web.Request) -> web.Response:
    body = await parse_body(request, MemberPatch)
    member = await _service(request).set_role(
        current_user(request), request.match_info["id"], request.match_info["userId"], body.role
    )
    return json_bytes(orjson.dumps(_member(member)))


async def remove_member(request: web.Request) -> web.Response:
    await _service(request).remove(
        current_user(request), request.match_info["id"], request.match_info["userId"]
    )
    return no_content()
