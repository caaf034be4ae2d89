"""The org a dashboard page acts in: the `taskflowd_org` cookie (set by the header's org
switcher) when it names one of the viewer's orgs, else the viewer's default org (its
first org when the default is gone). A site ADMIN without a choice sees every org, as
through the API without `X-Taskflow-Org`. A stale or foreign id in the cookie counts as
no choice; it never reaches another org's data.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from taskflowd.dashboard.context import Dashboard, redirect
from taskflowd.domain.entities import DEFAULT_ORG_ID, User
from taskflowd.domain.enums import Role
from taskflowd.domain.orgs import Actor, OrgRole
from taskflowd.services.orgs import OrgView

ORG_COOKIE = "taskflowd_org"
ALL_ORGS = "all"
"""The cookie value of a site admin's view across orgs."""
MAX_SWITCHER = 100
NO_ORG = "-"
"""The org id of a user who belongs to no org: matches no record."""


@dataclass(frozen=True, slots=True)
class Acting:
    """Who a page acts as, the orgs the switcher offers and the current one (None: a
    site admin's view of every org)."""

    actor: Actor
    orgs: list[OrgView]
    current: OrgView | None

    @property
    def can_write(self) -> bool:
        """May change the org's tasks (MEMBER or higher, or a site admin)."""
        return self.actor.is_site_admin or (
            self.actor.org_role is not None and self.actor.org_role.at_least(OrgRole.MEMBER)
        )

    @property
    def can_manage(self) -> bool:
        """May invite, change roles and remove members (ADMIN or higher, or a site admin)."""
        return self.actor.is_site_admin or (
            self.actor.org_role is not None and self.actor.org_role.at_least(OrgRole.ADMIN)
        )


ACTING_KEY = web.RequestKey("taskflowd.dashboard.acting", Acting)


async def resolve(ctx: Dashboard, user: User, choice: str | None) -> Acting:
    views = (await ctx.orgs.list(user, MAX_SWITCHER, None)).items
    by_id = {v.org.id: v for v in views}
    site_admin = user.role is Role.ADMIN
    chosen = by_id.get(choice or "")
    if chosen is not None and (chosen.role is not None or site_admin):
        return Acting(Actor(user, chosen.org.id, chosen.role), views, chosen)
    mine = [v for v in views if v.role is not None]
    default = next((v for v in mine if v.org.id == user.default_org_id), None)
    if default is None and mine:
        default = mine[0]
    if site_admin:
        org_id = default.org.id if default else DEFAULT_ORG_ID
        role = default.role if default else None
        return Acting(Actor(user, org_id, role, across=True), views, None)
    if default is None:
        return Acting(Actor(user, NO_ORG, None), views, None)
    return Acting(Actor(user, default.org.id, default.role), views, default)


def acting(request: web.Request) -> Acting:
    return request[ACTING_KEY]


def actor(request: web.Request) -> Actor:
    """The signed-in user acting in the current org: what every service call gets."""
    return request[ACTING_KEY].actor


READ_ONLY = (
    "Your role in this organization only reads: changing its tasks needs the MEMBER role "
    "(or higher)."
)


def refuse_read_only(request: web.Request, here: str) -> web.Response | None:
    """Back to `here` with a flash message when the viewer may not change the org's
    tasks (a VIEWER who posted a form anyway); None when it may."""
    if request[ACTING_KEY].can_write:
        return None
    return redirect(request, here, READ_ONLY, error=True)
