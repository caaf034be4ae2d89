"""Request and response models of /api/v1/webhooks (DESIGN.md §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from taskflowd.api.schemas import RequestModel, ResponseModel
from taskflowd.api.schemas_tasks import Description
from taskflowd.handlers.http_rules import checked_url
from taskflowd.webhooks.rules import MAX_URL_LENGTH, DeliveryStatus, EndpointStatus

WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_URL_LENGTH),
    AfterValidator(checked_url),
]
EventType = Literal[
    "execution.completed",
    "execution.failed",
    "execution.dead_lettered",
    "execution.retrying",
    "workflow_run.finished",
    "task.created",
    "task.updated",
    "task.deleted",
    "*",
]
Events = Annotated[list[EventType], Field(min_length=1, max_length=16)]
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class WebhookCreate(RequestModel):
    """A new endpoint: `events` it subscribes to (`*`: all), optionally only those of one
    task (`taskId`) or one workflow (`workflowId`)."""

    url: WebhookUrl
    events: Events
    task_id: RecordId | None = None
    workflow_id: RecordId | None = None
    description: Description = ""


class WebhookPatch(RequestModel):
    """Fields to change; `enabled: true` turns a disabled endpoint back on."""

    url: WebhookUrl | None = None
    events: Events | None = None
    task_id: RecordId | None = None
    workflow_id: RecordId | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookOut(ResponseModel):
    id: str
    url: str
    description: str
    events: list[str]
    task_id: str | None
    workflow_id: str | None
    status: EndpointStatus
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries carry the previous secret's signature too"
    )
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_…); shown this once only")


class WebhookList(ResponseModel):
    items: list[WebhookOut]
    next_cursor: str | None


class DeliveryOut(ResponseModel):
    id: str
    webhook_id: str
    message_id: str = Field(description="The webhook-id header: the same on every attempt")
    event_type: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    response_body: str | None = Field(description="The first 1 KiB of the last answer")
    error: str | None
    duration: int | None = Field(description="Milliseconds the last attempt took")
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryList(ResponseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
