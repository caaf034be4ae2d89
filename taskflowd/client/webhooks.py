"""Webhook calls of the client: `client.webhooks` (async) and its blocking mirror for
`Client`. Models mirror the API's webhook schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskflowd.client.blocking import Call, pages
from taskflowd.client.codec import decode
from taskflowd.client.models import UNSET, Page, Unset
from taskflowd.client.resources import DEFAULT_PAGE, ITER_PAGE, every_item, page_of
from taskflowd.client.transport import Transport

PREFIX = "/api/v1/webhooks"


@dataclass(frozen=True, slots=True)
class Webhook:
    """An endpoint; `status` is ACTIVE or DISABLED (with `disabled_reason`)."""

    id: str
    url: str
    description: str
    events: tuple[str, ...]
    task_id: str | None
    workflow_id: str | None
    status: str
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewWebhook(Webhook):
    """An endpoint with its signing secret, as created or rotated: keep `secret`, the
    server never shows it again."""

    secret: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one endpoint; `message_id` is its `webhook-id` header."""

    id: str
    webhook_id: str
    message_id: str
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    response_body: str | None
    error: str | None
    duration_ms: int | None = field(metadata={"json": "duration"})
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Webhooks:
    """/api/v1/webhooks: endpoints receiving signed messages, and their delivery logs."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    async def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[Webhook]:
        data = await self._http.call("GET", PREFIX, params={"limit": limit, "cursor": cursor})
        return page_of(Webhook, data)

    def iter(self, *, page_size: int = ITER_PAGE) -> AsyncIterator[Webhook]:
        return every_item(lambda cursor: self.list(limit=page_size, cursor=cursor))

    async def get(self, webhook_id: str) -> Webhook:
        return decode(Webhook, await self._http.call("GET", f"{PREFIX}/{webhook_id}"))

    async def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        task_id: str | None = None,
        workflow_id: str | None = None,
        description: str = "",
    ) -> NewWebhook:
        body: dict[str, Any] = {"url": url, "events": list(events), "description": description}
        if task_id is not None:
            body["taskId"] = task_id
        if workflow_id is not None:
            body["workflowId"] = workflow_id
        return decode(NewWebhook, await self._http.call("POST", PREFIX, body=body, ok=(201,)))

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        task_id: str | Unset | None = UNSET,
        workflow_id: str | Unset | None = UNSET,
        enabled: bool | None = None,
    ) -> Webhook:
        """Change the fields given (`task_id=None` drops the task filter)."""
        body: dict[str, Any] = {}
        for name, value in (("url", url), ("description", description), ("enabled", enabled)):
            if value is not None:
                body[name] = value
        if events is not None:
            body["events"] = list(events)
        if not isinstance(task_id, Unset):
            body["taskId"] = task_id
        if not isinstance(workflow_id, Unset):
            body["workflowId"] = workflow_id
        data = await self._http.call("PATCH", f"{PREFIX}/{webhook_id}", body=body)
        return decode(Webhook, data)

    async def delete(self, webhook_id: str) -> None:
        await self._http.call("DELETE", f"{PREFIX}/{webhook_id}", ok=(204,))

    async def test(self, webhook_id: str) -> Delivery:
        """Queue a `ping` message to the endpoint."""
        data = await self._http.call("POST", f"{PREFIX}/{webhook_id}/test", ok=(202,))
        return decode(Delivery, data)

    async def rotate_secret(self, webhook_id: str) -> NewWebhook:
        data = await self._http.call("POST", f"{PREFIX}/{webhook_id}/rotate-secret")
        return decode(NewWebhook, data)

    async def deliveries(
        self, webhook_id: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page[Delivery]:
        params = {"limit": limit, "cursor": cursor}
        data = await self._http.call("GET", f"{PREFIX}/{webhook_id}/deliveries", params=params)
        return page_of(Delivery, data)

    def iter_deliveries(
        self, webhook_id: str, *, page_size: int = ITER_PAGE
    ) -> AsyncIterator[Delivery]:
        return every_item(
            lambda cursor: self.deliveries(webhook_id, limit=page_size, cursor=cursor)
        )

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        path = f"{PREFIX}/{webhook_id}/deliveries/{delivery_id}/redeliver"
        return decode(Delivery, await self._http.call("POST", path, ok=(202,)))


class SyncWebhooks:
    """Blocking `AsyncClient.webhooks`."""

    def __init__(self, aio: Webhooks, call: Call) -> None:
        self._aio = aio
        self._call = call

    def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[Webhook]:
        return self._call(self._aio.list(limit=limit, cursor=cursor))

    def iter(self, *, page_size: int = ITER_PAGE) -> Iterator[Webhook]:
        return pages(lambda cursor: self.list(limit=page_size, cursor=cursor))

    def get(self, webhook_id: str) -> Webhook:
        return self._call(self._aio.get(webhook_id))

    def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        task_id: str | None = None,
        workflow_id: str | None = None,
        description: str = "",
    ) -> NewWebhook:
        return self._call(
            self._aio.create(
                url, events, task_id=task_id, workflow_id=workflow_id, description=description
            )
        )

    def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        task_id: str | Unset | None = UNSET,
        workflow_id: str | Unset | None = UNSET,
        enabled: bool | None = None,
    ) -> Webhook:
        return self._call(
            self._aio.update(
                webhook_id,
                url=url,
                events=events,
                description=description,
                task_id=task_id,
                workflow_id=workflow_id,
                enabled=enabled,
            )
        )

    def delete(self, webhook_id: str) -> None:
        self._call(self._aio.delete(webhook_id))

    def test(self, webhook_id: str) -> Delivery:
        return self._call(self._aio.test(webhook_id))

    def rotate_secret(self, webhook_id: str) -> NewWebhook:
        return self._call(self._aio.rotate_secret(webhook_id))

    def deliveries(
        self, webhook_id: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page[Delivery]:
        return self._call(self._aio.deliveries(webhook_id, limit=limit, cursor=cursor))

    def iter_deliveries(self, webhook_id: str, *, page_size: int = ITER_PAGE) -> Iterator[Delivery]:
        return pages(lambda c: self.deliveries(webhook_id, limit=page_size, cursor=c))

    def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        return self._call(self._aio.redeliver(webhook_id, delivery_id))
