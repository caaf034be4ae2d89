"""/api/v1/webhooks: endpoints that receive signed messages about the org's jobs, tasks
and workflow runs, and their delivery logs (DESIGN.md §10).

The handlers; the routes are declared in `taskflowd.api.routes.webhooks`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskflowd.api.acting import current_actor
from taskflowd.api.responses import json_response, no_content
from taskflowd.api.routes.webhooks import WEBHOOKS_KEY
from taskflowd.api.schemas import ListQuery
from taskflowd.api.schemas_webhooks import (
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookList,
    WebhookOut,
    WebhookPatch,
    WebhookWithSecret,
)
from taskflowd.api.validation import parse_body, parse_query
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.webhooks.model import Delivery, Endpoint
from taskflowd.webhooks.service import WebhookService

_NULLABLE = frozenset({"task_id", "workflow_id"})


def _service(request: web.Request) -> WebhookService:
    return request.app[WEBHOOKS_KEY]


def _fields(e: Endpoint) -> dict[str, Any]:
    return {
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "events": list(e.events),
        "task_id": e.task_id,
        "workflow_id": e.workflow_id,
        "status": e.status,
        "disabled_reason": e.disabled_reason,
        "failing_since": e.failing_since,
        "previous_secret_expires_at": e.previous_secret_until,
        "created_by": e.created_by,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    }


def webhook_out(e: Endpoint) -> WebhookOut:
    return WebhookOut(**_fields(e))


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        webhook_id=d.endpoint_id,
        message_id=d.message_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        response_status=d.response_status,
        response_body=d.response_body,
        error=d.error,
        duration=d.duration_ms,
        next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def _id(request: web.Request) -> str:
    return request.match_info["id"]


async def create_webhook(request: web.Request) -> web.Response:
    body = await parse_body(request, WebhookCreate)
    endpoint, secret = await _service(request).create(
        await current_actor(request),
        body.url,
        body.events,
        body.description,
        task_id=body.task_id,
        workflow_id=body.workflow_id,
    )
    return json_response(WebhookWithSecret(**_fields(endpoint), secret=secret), status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await _service(request).list(await current_actor(request), query.limit, query.cursor)
    items = [webhook_out(e) for e in page.items]
    return json_response(WebhookList(items=items, next_cursor=page.next_cursor))


async def get_webhook(request: web.Request) -> web.Response:
    endpoint = await _service(request).get(await current_actor(request), _id(request))
    return json_response(webhook_out(endpoint))


async def update_webhook(request: web.Request) -> web.Response:
    body = await parse_body(request, WebhookPatch)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name not in _NULLABLE:
            raise ValidationFailed([FieldError(name, "cannot be null")])
        changes[name] = value
    endpoint = await _service(request).update(await current_actor(request), _id(request), changes)
    return json_response(webhook_out(endpoint))


async def delete_webhook(request: web.Request) -> web.Response:
    await _service(request).delete(await current_actor(request), _id(request))
    return no_content()


async def ping_webhook(request: web.Request) -> web.Response:
    delivery = await _service(request).test(await current_actor(request), _id(request))
    return json_response(delivery_out(delivery), status=202)


async def rotate_webhook_secret(request: web.Request) -> web.Response:
    endpoint, secret = await _service(request).rotate_secret(
        await current_actor(request), _id(request)
    )
    return json_response(WebhookWithSecret(**_fields(endpoint), secret=secret))


async def list_webhook_deliveries(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await _service(request).deliveries(
        await current_actor(request), _id(request), query.limit, query.cursor
    )
    items = [delivery_out(d) for d in page.items]
    return json_response(DeliveryList(items=items, next_cursor=page.next_cursor))


async def redeliver_webhook_delivery(request: web.Request) -> web.Response:
    delivery = await _service(request).redeliver(
        await current_actor(request), _id(request), request.match_info["did"]
    )
    return json_response(delivery_out(delivery), status=202)
