"""Who may read which audit events: site ADMINs every org's (or the org they name), an
org's OWNERs and ADMINs that org's only; nobody else. Nothing here changes an event."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from taskflowd.audit.model import AuditEvent
from taskflowd.audit.records import AuditFilter, AuditRecords
from taskflowd.domain.errors import Forbidden
from taskflowd.domain.orgs import Actor, OrgRole
from taskflowd.store.base import Page


class AuditService:
    def __init__(self, records: AuditRecords) -> None:
        self.records = records

    @staticmethod
    def scope(actor: Actor) -> str | None:
        """The org whose events `actor` reads (None: every org); Forbidden for members
        below ADMIN."""
        if actor.is_site_admin:
            return actor.scope
        if actor.org_role is None or not actor.org_role.at_least(OrgRole.ADMIN):
            raise Forbidden("reading the audit trail needs the ADMIN role (or higher) in the org")
        return actor.org_id

    def _scoped(self, actor: Actor, filters: AuditFilter) -> AuditFilter:
        return dataclasses.replace(filters, org_id=self.scope(actor))

    async def page(
        self, actor: Actor, filters: AuditFilter, limit: int, cursor: str | None
    ) -> Page[AuditEvent]:
        """Matching events the actor may read, newest first."""
        return await self.records.page(self._scoped(actor, filters), limit, cursor)

    def export(self, actor: Actor, filters: AuditFilter) -> AsyncIterator[AuditEvent]:
        """Every matching event the actor may read, oldest first (checked before the
        first event is read)."""
        return self.records.export(self._scoped(actor, filters))
