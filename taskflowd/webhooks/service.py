"""Webhook endpoint operations with their rules; the API calls these.

Isolation as for tasks: an actor sees the endpoints of the org it acts in only (another
org's look missing), a site ADMIN who names no org sees all. Every member may read an
endpoint and its delivery log; changes need the ADMIN org role. A secret is returned by
`create` and `rotate_secret` only, never by a read.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from taskflowd.audit.journal import Recording
from taskflowd.config import WebhookSettings
from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.errors import Conflict, FieldError, NotFound, ValidationFailed
from taskflowd.domain.orgs import Actor, OrgRole, QuotaExceeded, as_actor
from taskflowd.store.base import Page
from taskflowd.store.outbox import Notice
from taskflowd.webhooks.model import Delivery, Endpoint
from taskflowd.webhooks.outbox import message_body, message_id
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.rules import PING, EndpointStatus, new_secret

_CHANGEABLE = frozenset({"url", "events", "description", "task_id", "workflow_id", "enabled"})
_AUDITED = ("url", "description", "events", "task_id", "workflow_id", "status", "disabled_reason")


def _writer(who: User | Actor) -> Actor:
    actor = as_actor(who)
    actor.require(OrgRole.ADMIN, "changing the org's webhooks")
    return actor


class WebhookService:
    def __init__(self, records: WebhookRecords, settings: WebhookSettings) -> None:
        self.records = records
        self.settings = settings

    def _recording(
        self,
        who: User | Actor,
        action: str,
        endpoint: Endpoint,
        changes: dict[str, Any] | None = None,
    ) -> AbstractContextManager[Recording]:
        """Record `action` on `endpoint` in the transaction of the change made inside."""
        journal = self.records.journal
        target = ("webhook", endpoint.id)
        return journal.recording(journal.event(action, who, endpoint.org_id, target, changes))

    async def _found(self, who: User | Actor, endpoint_id: str) -> Endpoint:
        endpoint = await self.records.get(endpoint_id, as_actor(who).scope)
        if endpoint is None:
            raise NotFound(f"webhook {endpoint_id} not found")
        return endpoint

    async def _check_targets(
        self, org_id: str, task_id: str | None, workflow_id: str | None
    ) -> None:
        errors = []
        if task_id is not None and not await self.records.exists("tasks", task_id, org_id):
            errors.append(FieldError("taskId", "no such task in this organization"))
        if workflow_id is not None and not await self.records.exists(
            "workflows", workflow_id, org_id
        ):
            errors.append(FieldError("workflowId", "no such workflow in this organization"))
        if errors:
            raise ValidationFailed(errors)

    async def create(
        self,
        who: User | Actor,
        url: str,
        events: Sequence[str],
        description: str,
        task_id: str | None = None,
        workflow_id: str | None = None,
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its signing secret (shown to the caller this once)."""
        actor = _writer(who)
        await self._check_targets(actor.org_id, task_id, workflow_id)
        limit = self.settings.max_endpoints_per_org
        if await self.records.count(actor.org_id) >= limit:
            raise QuotaExceeded("webhooks.max_endpoints_per_org", limit)
        now = utcnow()
        endpoint = Endpoint(
            id=str(uuid.uuid4()),
            org_id=actor.org_id,
            url=url,
            description=description,
            events=tuple(sorted(set(events))),
            task_id=task_id,
            workflow_id=workflow_id,
            status=EndpointStatus.ACTIVE,
            disabled_reason=None,
            failing_since=None,
            previous_secret_until=None,
            created_by=actor.id,
            created_at=now,
            updated_at=now,
        )
        secret = new_secret()
        changes = self.records.journal.diff(None, endpoint, _AUDITED)
        with self._recording(actor, "webhook.created", endpoint, changes):
            return await self.records.create(endpoint, secret), secret

    async def get(self, who: User | Actor, endpoint_id: str) -> Endpoint:
        return await self._found(who, endpoint_id)

    async def list(self, who: User | Actor, limit: int, cursor: str | None) -> Page[Endpoint]:
        return await self.records.list_endpoints(as_actor(who).scope, limit, cursor)

    async def update(
        self, who: User | Actor, endpoint_id: str, changes: Mapping[str, Any]
    ) -> Endpoint:
        """Change fields named in `changes` (`enabled` turns a disabled endpoint back on,
        with a clean failure record, or turns it off)."""
        _writer(who)
        endpoint = await self._found(who, endpoint_id)
        fields = {k: v for k, v in changes.items() if k in _CHANGEABLE and k != "enabled"}
        if "events" in fields:
            fields["events"] = tuple(sorted(set(fields["events"])))
        await self._check_targets(endpoint.org_id, fields.get("task_id"), fields.get("workflow_id"))
        if "enabled" in changes:
            enabled = bool(changes["enabled"])
            was = endpoint.status is EndpointStatus.ACTIVE
            if enabled and not was:
                fields.update(
                    status=EndpointStatus.ACTIVE, disabled_reason=None, failing_since=None
                )
            elif not enabled and was:
                fields.update(status=EndpointStatus.DISABLED, disabled_reason="disabled by a user")
        changed = dataclasses.replace(endpoint, **fields, updated_at=utcnow())
        diff = self.records.journal.diff(endpoint, changed, _AUDITED)
        with self._recording(who, "webhook.updated", endpoint, diff):
            saved = await self.records.update(changed)
        if saved is None:
            raise NotFound(f"webhook {endpoint_id} not found")
        return saved

    async def delete(self, who: User | Actor, endpoint_id: str) -> None:
        _writer(who)
        endpoint = await self._found(who, endpoint_id)
        with self._recording(who, "webhook.deleted", endpoint):
            deleted = await self.records.delete(endpoint_id, as_actor(who).scope)
        if not deleted:
            raise NotFound(f"webhook {endpoint_id} not found")

    async def rotate_secret(self, who: User | Actor, endpoint_id: str) -> tuple[Endpoint, str]:
        """A new secret (shown this once); deliveries carry the old one's signature as
        well for `rotation_overlap_s`."""
        _writer(who)
        endpoint = await self._found(who, endpoint_id)
        now = utcnow()
        until = now + timedelta(seconds=self.settings.rotation_overlap_s)
        secret = new_secret()
        changes = {"secret": ["[redacted]", "[redacted]"]}
        with self._recording(who, "webhook.secret_rotated", endpoint, changes):
            rotated = await self.records.rotate(endpoint.id, endpoint.org_id, secret, until, now)
        if not rotated:
            raise NotFound(f"webhook {endpoint_id} not found")
        return dataclasses.replace(endpoint, previous_secret_until=until, updated_at=now), secret

    async def test(self, who: User | Actor, endpoint_id: str) -> Delivery:
        """Queue a `ping` message to the endpoint."""
        _writer(who)
        endpoint = await self._found(who, endpoint_id)
        if endpoint.status is not EndpointStatus.ACTIVE:
            raise Conflict("the webhook is disabled; enable it before testing it")
        now = utcnow()
        notice = Notice(PING, {"webhookId": endpoint.id, "url": endpoint.url}, now)
        with self._recording(who, "webhook.tested", endpoint):
            delivery = await self.records.add_delivery(
                uuid.uuid4().hex, endpoint, message_id(), message_body(notice), now
            )
        if delivery is None:
            raise NotFound(f"webhook {endpoint_id} not found")
        return delivery

    async def deliveries(
        self, who: User | Actor, endpoint_id: str, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        endpoint = await self._found(who, endpoint_id)
        return await self.records.list_deliveries(endpoint.id, limit, cursor)

    async def redeliver(self, who: User | Actor, endpoint_id: str, delivery_id: str) -> Delivery:
        """Send a finished delivery again, with the same `webhook-id`."""
        _writer(who)
        endpoint = await self._found(who, endpoint_id)
        if await self.records.get_delivery(delivery_id, endpoint.id) is None:
            raise NotFound(f"delivery {delivery_id} not found")
        changes = {"deliveryId": [None, delivery_id]}
        with self._recording(who, "webhook.redelivered", endpoint, changes):
            redelivered = await self.records.redeliver(delivery_id, endpoint.id, utcnow())
        if not redelivered:
            raise Conflict("the delivery is queued or being sent already")
        found = await self.records.get_delivery(delivery_id, endpoint.id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} not found")
        return found
