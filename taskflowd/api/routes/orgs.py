"""/api/v1/orgs: organizations (create, list, read, rename, quotas, delete) and their
members (invite by email, change role, remove).

Declared here; the handlers, in `taskflowd.api.views.orgs`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation
from taskflowd.services.orgs import OrgService

VIEWS = "taskflowd.api.views.orgs"
PREFIX = "/api/v1/orgs"
USER_PARAM = "{userId:[0-9A-Za-z-]+}"
ORGS_KEY = web.AppKey("taskflowd.orgs", OrgService)


def install(api: ApiRegistry) -> None:
    user = Access.USER
    one = f"{PREFIX}/{ID_PARAM}"
    members = f"{one}/members"
    for operation in (
        Operation(
            "GET",
            PREFIX,
            "list_orgs",
            "Your organizations (site admins: all), newest first",
            "orgs",
            user,
            query="schemas.ListQuery",
            response="views.orgs.OrgList",
            etag=True,
        ),
        Operation(
            "POST",
            PREFIX,
            "create_org",
            "Create an organization; you become its OWNER",
            "orgs",
            user,
            status=201,
            body="views.orgs.OrgCreate",
            response="views.orgs.OrgOut",
        ),
        Operation(
            "GET",
            one,
            "get_org",
            "One of your organizations",
            "orgs",
            user,
            response="views.orgs.OrgOut",
        ),
        Operation(
            "PATCH",
            one,
            "update_org",
            "Rename an organization (ADMIN); quotas: site admins only",
            "orgs",
            user,
            body="views.orgs.OrgPatch",
            response="views.orgs.OrgOut",
            problems=(403,),
        ),
        Operation(
            "DELETE",
            one,
            "delete_org",
            "Delete an organization with its tasks and queued jobs (OWNER)",
            "orgs",
            user,
            status=204,
            problems=(403,),
        ),
        Operation(
            "GET",
            members,
            "list_members",
            "The members of an organization",
            "orgs",
            user,
            query="schemas.ListQuery",
            response="views.orgs.MemberList",
            etag=True,
        ),
        Operation(
            "POST",
            members,
            "invite_member",
            "Add an existing user, by email address (ADMIN; OWNER to add an OWNER)",
            "orgs",
            user,
            status=201,
            body="views.orgs.MemberInvite",
            response="views.orgs.MemberOut",
            problems=(403, 409),
        ),
        Operation(
            "PATCH",
            f"{members}/{USER_PARAM}",
            "update_member",
            "Change a member's role (ADMIN; OWNER for the OWNER role)",
            "orgs",
            user,
            body="views.orgs.MemberPatch",
            response="views.orgs.MemberOut",
            problems=(403, 409),
        ),
        Operation(
            "DELETE",
            f"{members}/{USER_PARAM}",
            "remove_member",
            "Remove a member (ADMIN; anyone may leave); never the last OWNER",
            "orgs",
            user,
            status=204,
            problems=(403, 409),
        ),
    ):
        api.add(operation, VIEWS)
