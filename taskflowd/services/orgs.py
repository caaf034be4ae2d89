"""Organizations and their members, with the rules of DESIGN §11.

Who may do what: any member reads its org and its members; an ADMIN invites, changes
roles (below OWNER) and removes members; only an OWNER grants or takes the OWNER role and
deletes the org; the last OWNER can be neither removed nor demoted; quota overrides are
the site ADMIN's. A non-member sees no org at all (NotFound). Every change of a
membership publishes a `principal` event, so cached principals on every node forget it.
"""

from __future__ import annotations

import dataclasses
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from taskflowd.audit.journal import Recording
from taskflowd.auth.principals import PRINCIPAL_EVENT
from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.enums import Role
from taskflowd.domain.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from taskflowd.domain.orgs import (
    Member,
    Org,
    OrgRole,
    Quotas,
    name_problems,
    quota_problems,
)
from taskflowd.events import EventBus
from taskflowd.store.base import Page, Store

QUOTA_FIELDS = {
    "max_tasks": "quotas.maxTasks",
    "max_workflows": "quotas.maxWorkflows",
    "max_running_jobs": "quotas.maxRunningJobs",
    "api_limit_per_min": "quotas.apiLimitPerMin",
}


class LastOwner(Conflict):
    """The change would leave an org without an OWNER."""

    code = "last_owner"


@dataclass(frozen=True, slots=True)
class OrgView:
    """An org as one user sees it: its role there (None: a site admin who is no member)
    and the quotas in force (its overrides over the configured defaults)."""

    org: Org
    role: OrgRole | None
    quotas: Quotas


class OrgService:
    def __init__(self, store: Store, defaults: Quotas, events: EventBus | None = None) -> None:
        self.store = store
        self.defaults = defaults
        self.events = events or EventBus()
        self.journal = store.journal

    def _recording(
        self,
        actor: User,
        action: str,
        org_id: str,
        target: tuple[str, str],
        changes: dict[str, Any] | None = None,
    ) -> AbstractContextManager[Recording]:
        return self.journal.recording(self.journal.event(action, actor, org_id, target, changes))

    def _changed(self, *user_ids: str) -> None:
        for user_id in user_ids:
            self.events.publish(PRINCIPAL_EVENT, userId=user_id)

    async def _find(self, actor: User, ref: str, needed: OrgRole) -> OrgView:
        """The org `ref` (id or slug) if `actor` may see it, checked for `needed`."""
        org = await self.store.get_org(ref)
        member = None if org is None else await self.store.get_member(org.id, actor.id)
        site_admin = actor.role is Role.ADMIN
        if org is None or (member is None and not site_admin):
            raise NotFound(f"organization {ref} not found")
        role = member.role if member else None
        if not site_admin and (role is None or not role.at_least(needed)):
            raise Forbidden(f"this needs the {needed.value} role (or higher) in the org")
        return OrgView(org, role, org.quotas.over(self.defaults))

    # --- orgs ------------------------------------------------------------------
    async def create(self, actor: User, name: str) -> OrgView:
        """A new org with `actor` as its OWNER."""
        problems = name_problems("name", name)
        if problems:
            raise ValidationFailed(problems)
        org_id = str(uuid.uuid4())
        created = {"name": [None, name.strip()]}
        with self._recording(actor, "org.created", org_id, ("org", org_id), created):
            org = await self.store.create_org(name.strip(), actor.id, utcnow(), org_id)
        self._changed(actor.id)
        return OrgView(org, OrgRole.OWNER, org.quotas.over(self.defaults))

    async def get(self, actor: User, ref: str) -> OrgView:
        return await self._find(actor, ref, OrgRole.VIEWER)

    async def list(self, actor: User, limit: int, cursor: str | None) -> Page[OrgView]:
        """The actor's orgs (a site admin: every org), newest first."""
        member_of = None if actor.role is Role.ADMIN else actor.id
        page = await self.store.list_orgs(member_of, limit, cursor)
        roles = {m.org_id: m.role for m in await self.store.memberships(actor.id)}
        views = [OrgView(o, roles.get(o.id), o.quotas.over(self.defaults)) for o in page.items]
        return Page(views, page.next_cursor)

    async def update(
        self, actor: User, ref: str, name: str | None, quotas: dict[str, int | None] | None
    ) -> OrgView:
        """Rename (ADMIN) and/or set quota overrides (site ADMIN; None values reset one
        to the configured default)."""
        view = await self._find(actor, ref, OrgRole.ADMIN)
        problems = [] if name is None else name_problems("name", name)
        if quotas is not None:
            if actor.role is not Role.ADMIN:
                raise Forbidden("only a site administrator may change an org's quotas")
            overrides = dataclasses.replace(view.org.quotas, **quotas)
            problems += quota_problems(overrides, QUOTA_FIELDS)
        if problems:
            raise ValidationFailed(problems)
        org = dataclasses.replace(
            view.org,
            name=view.org.name if name is None else name.strip(),
            quotas=view.org.quotas if quotas is None else overrides,
            updated_at=utcnow(),
        )
        action = "org.quotas_changed" if quotas is not None else "org.updated"
        diff = self.journal.diff(view.org, org, ("name", "quotas"))
        with self._recording(actor, action, org.id, ("org", org.id), diff):
            saved = await self.store.update_org(org)
        if saved is None:
            raise NotFound(f"organization {ref} not found")
        if quotas is not None:
            self.events.publish(PRINCIPAL_EVENT, orgId=org.id)
        return OrgView(org, view.role, org.quotas.over(self.defaults))

    async def delete(self, actor: User, ref: str) -> None:
        """Delete the org with its tasks and queued jobs (OWNER)."""
        view = await self._find(actor, ref, OrgRole.OWNER)
        org = view.org
        with self._recording(
            actor, "org.deleted", org.id, ("org", org.id), {"name": [org.name, None]}
        ):
            members = await self.store.delete_org(org.id, utcnow())
        self._changed(*members)

    # --- members -----------------------------------------------------------------
    async def members(self, actor: User, ref: str, limit: int, cursor: str | None) -> Page[Member]:
        view = await self._find(actor, ref, OrgRole.VIEWER)
        return await self.store.list_members(view.org.id, limit, cursor)

    @staticmethod
    def _may_grant(view: OrgView, actor: User, role: OrgRole) -> None:
        if (
            role is OrgRole.OWNER
            and view.role is not OrgRole.OWNER
            and actor.role is not Role.ADMIN
        ):
            raise Forbidden("only an OWNER may grant or take the OWNER role")

    async def invite(self, actor: User, ref: str, email: str, role: OrgRole) -> Member:
        """Add the existing user with `email` (ADMIN; OWNER to add an OWNER)."""
        view = await self._find(actor, ref, OrgRole.ADMIN)
        self._may_grant(view, actor, role)
        user = await self.store.get_user_by_email(email.strip())
        if user is None:
            raise ValidationFailed([FieldError("email", "no user has this email address")])
        added = {"role": [None, role.value], "email": [None, user.email]}
        with self._recording(actor, "org.member_added", view.org.id, ("user", user.id), added):
            fresh = await self.store.add_member(view.org.id, user.id, role, utcnow())
        if not fresh:
            raise Conflict("this user is a member of the org already")
        self._changed(user.id)
        return await self._member(view.org.id, user.id)

    async def _member(self, org_id: str, user_id: str) -> Member:
        member = await self.store.get_member(org_id, user_id)
        if member is None:
            raise NotFound(f"member {user_id} not found")
        return member

    async def set_role(self, actor: User, ref: str, user_id: str, role: OrgRole) -> Member:
        view = await self._find(actor, ref, OrgRole.ADMIN)
        current = await self._member(view.org.id, user_id)
        self._may_grant(view, actor, current.role)
        self._may_grant(view, actor, role)
        diff = {"role": [current.role.value, role.value]}
        with self._recording(
            actor, "org.member_role_changed", view.org.id, ("user", user_id), diff
        ):
            changed = await self.store.set_member_role(view.org.id, user_id, role)
        if changed is None:
            raise NotFound(f"member {user_id} not found")
        if not changed:
            raise LastOwner("the org's last OWNER cannot be demoted; make another OWNER first")
        self._changed(user_id)
        return await self._member(view.org.id, user_id)

    async def remove(self, actor: User, ref: str, user_id: str) -> None:
        """Remove a member (ADMIN; OWNER to remove an OWNER); anyone may leave."""
        leaving = user_id == actor.id
        view = await self._find(actor, ref, OrgRole.VIEWER if leaving else OrgRole.ADMIN)
        current = await self._member(view.org.id, user_id)
        if not leaving:
            self._may_grant(view, actor, current.role)
        gone = {"role": [current.role.value, None]}
        with self._recording(actor, "org.member_removed", view.org.id, ("user", user_id), gone):
            removed = await self.store.remove_member(view.org.id, user_id)
        if removed is None:
            raise NotFound(f"member {user_id} not found")
        if not removed:
            raise LastOwner("the org's last OWNER cannot be removed; make another OWNER first")
        self._changed(user_id)
