"""/api/v1/webhooks: endpoints that receive signed messages about the org's jobs, tasks
and workflow runs, and their delivery logs (DESIGN.md §10).

Declared here; the handlers, in `taskflowd.api.views.webhooks`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation
from taskflowd.webhooks.service import WebhookService

VIEWS = "taskflowd.api.views.webhooks"
PREFIX = "/api/v1/webhooks"
DELIVERY_PARAM = "{did:[0-9A-Za-z-]+}"
WEBHOOKS_KEY = web.AppKey("taskflowd.webhooks", WebhookService)


def install(api: ApiRegistry) -> None:
    user = Access.USER
    one = f"{PREFIX}/{ID_PARAM}"
    tag = "webhooks"
    for operation in (
        Operation(
            "GET",
            PREFIX,
            "list_webhooks",
            "The org's webhook endpoints, newest first (secrets are never shown)",
            tag,
            user,
            query="schemas.ListQuery",
            response="schemas_webhooks.WebhookList",
        ),
        Operation(
            "POST",
            PREFIX,
            "create_webhook",
            "Create a webhook endpoint; the answer shows its signing secret, this once only",
            tag,
            user,
            status=201,
            body="schemas_webhooks.WebhookCreate",
            response="schemas_webhooks.WebhookWithSecret",
            problems=(403,),
        ),
        Operation(
            "GET",
            one,
            "get_webhook",
            "Read a webhook endpoint",
            tag,
            user,
            response="schemas_webhooks.WebhookOut",
        ),
        Operation(
            "PATCH",
            one,
            "update_webhook",
            "Change a webhook endpoint; `enabled: true` turns a disabled one back on",
            tag,
            user,
            body="schemas_webhooks.WebhookPatch",
            response="schemas_webhooks.WebhookOut",
            problems=(403,),
        ),
        Operation(
            "DELETE",
            one,
            "delete_webhook",
            "Delete a webhook endpoint and its delivery log",
            tag,
            user,
            status=204,
            problems=(403,),
        ),
        Operation(
            "POST",
            f"{one}/test",
            "ping_webhook",
            "Send a `ping` message to the endpoint",
            tag,
            user,
            status=202,
            response="schemas_webhooks.DeliveryOut",
            body_required=False,
            problems=(403, 409),
        ),
        Operation(
            "POST",
            f"{one}/rotate-secret",
            "rotate_webhook_secret",
            "A new signing secret, shown this once; the old one signs too for 24 h",
            tag,
            user,
            response="schemas_webhooks.WebhookWithSecret",
            body_required=False,
            problems=(403,),
        ),
        Operation(
            "GET",
            f"{one}/deliveries",
            "list_webhook_deliveries",
            "The endpoint's deliveries, newest first: status, attempts, last answer",
            tag,
            user,
            query="schemas.ListQuery",
            response="schemas_webhooks.DeliveryList",
        ),
        Operation(
            "POST",
            f"{one}/deliveries/{DELIVERY_PARAM}/redeliver",
            "redeliver_webhook_delivery",
            "Send a finished delivery again, with the same webhook-id",
            tag,
            user,
            status=202,
            response="schemas_webhooks.DeliveryOut",
            body_required=False,
            problems=(403, 409),
        ),
    ):
        api.add(operation, VIEWS)
