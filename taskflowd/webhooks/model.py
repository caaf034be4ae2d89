"""Webhook endpoints and deliveries as the service and the API see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from taskflowd.webhooks.rules import DeliveryStatus, EndpointStatus


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    org_id: str
    url: str
    description: str
    events: tuple[str, ...]
    task_id: str | None
    workflow_id: str | None
    status: EndpointStatus
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_until: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint_id: str
    message_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    response_status: int | None
    response_body: str | None
    error: str | None
    duration_ms: int | None
    last_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this node holds the lease of (`fence`), with what it takes to send it."""

    id: str
    endpoint_id: str
    message_id: str
    event_type: str
    fence: int
    attempts: int
    body: bytes
    url: str
    secrets: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt found: the receiver's status and the start of its body, or the
    error that stopped it (a refused address, a timeout, a broken connection)."""

    status: int | None
    body: str | None
    error: str | None
    duration_ms: int
    outcome: str
    """For metrics: succeeded, failed (an answer other than 2xx), gone (410), timeout,
    refused (the address policy), or unreachable."""
