"""Webhook pages (DESIGN.md §10): the org's endpoints with their last delivery, a form to
add one, and one endpoint with its delivery log and its actions (test, enable, disable,
rotate the secret, delete, redeliver).

Only an org's OWNERs and ADMINs (and site admins) have these pages: others get the 403
page, as for the audit trail. Every change goes through `WebhookService`, the service
the API calls, so it is checked and audited the same way (`webhook.created`, …). A
signing secret is rendered in the answer to the form that made it and nowhere else, as
a new API key is (`views_keys`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from taskflowd.dashboard.acting import acting, actor
from taskflowd.dashboard.context import PREFIX, dashboard, redirect, render
from taskflowd.dashboard.forms import Form
from taskflowd.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from taskflowd.domain.orgs import QuotaExceeded
from taskflowd.domain.rules import MAX_DESCRIPTION_LENGTH
from taskflowd.webhooks.model import Delivery, Endpoint
from taskflowd.webhooks.rules import ANY_EVENT, EVENT_TYPES, MAX_URL_LENGTH
from taskflowd.webhooks.service import WebhookService

if TYPE_CHECKING:
    from taskflowd.api.schemas_webhooks import WebhookCreate

PAGE_SIZE = 50
MAX_CURSOR_CHARS = 512
MAX_ID_CHARS = 64
HOOKS = f"{PREFIX}/webhooks"
LABELS = {
    "url": "URL",
    "events": "Events",
    "taskId": "Only the task",
    "workflowId": "Only the workflow",
    "description": "Description",
}
EVENT_CHOICES = (
    (ANY_EVENT, "Every event"),
    *((name, name) for name in EVENT_TYPES),
)
MANAGERS_ONLY = "Webhooks are managed by the org's owners and admins."


def _service(request: web.Request) -> WebhookService:
    """The webhook service, for those who may manage webhooks; else the 403 page (404 on
    a node built without webhooks)."""
    service = dashboard(request).webhooks
    if service is None:
        raise web.HTTPNotFound(reason="This server has no webhooks.")
    if not acting(request).can_manage:
        raise Forbidden(MANAGERS_ONLY)
    return service


def _blank_form() -> Form:
    return Form({"url": "", "events": "", "taskId": "", "workflowId": "", "description": ""})


def _cursor(request: web.Request) -> str | None:
    return request.query.get("cursor", "")[:MAX_CURSOR_CHARS] or None


async def _last_deliveries(
    request: web.Request, service: WebhookService, endpoints: list[Endpoint]
) -> dict[str, Delivery]:
    """The newest delivery of each endpoint that has one."""
    who = actor(request)
    pages = await asyncio.gather(
        *(service.deliveries(who, e.id, 1, None) for e in endpoints), return_exceptions=True
    )
    found = {}
    for endpoint, page in zip(endpoints, pages, strict=True):
        if isinstance(page, NotFound):  # deleted by another request in between
            continue
        if isinstance(page, BaseException):
            raise page
        if page.items:
            found[endpoint.id] = page.items[0]
    return found


async def _hooks_page(
    request: web.Request, form: Form, events: list[str], status: int = 200
) -> web.Response:
    service = _service(request)
    cursor = _cursor(request)
    try:
        page = await service.list(actor(request), PAGE_SIZE, cursor)
    except ValidationFailed:  # a cursor this server never issued: start over
        cursor = None
        page = await service.list(actor(request), PAGE_SIZE, None)
    return render(
        request,
        "webhooks.html",
        {
            "endpoints": page.items,
            "last": await _last_deliveries(request, service, page.items),
            "next_cursor": page.next_cursor,
            "paged": cursor is not None,
            "form": form,
            "chosen_events": events,
            "labels": LABELS,
            "event_choices": EVENT_CHOICES,
            "across": acting(request).current is None,
            "max_url": MAX_URL_LENGTH,
            "max_description": MAX_DESCRIPTION_LENGTH,
        },
        status=status,
        section="webhooks",
    )


async def webhooks_page(request: web.Request) -> web.Response:
    return await _hooks_page(request, _blank_form(), [])


def _text(value: Any, limit: int) -> str:
    return value[:limit].strip() if isinstance(value, str) else ""


def _validated(form: Form, events: list[str]) -> WebhookCreate | None:
    """The form as the API's request body, checked by the API's own model; None (with
    each message next to its input) when it does not pass."""
    # The API's schemas (and pydantic) load with its first webhook request or this form.
    import pydantic

    from taskflowd.api.schemas_webhooks import WebhookCreate
    from taskflowd.api.validation import field_errors

    values = form.values
    body: dict[str, Any] = {
        "url": values["url"],
        "events": events,
        "description": values["description"],
    }
    for name in ("taskId", "workflowId"):
        if values[name]:
            body[name] = values[name]
    try:
        return WebhookCreate.model_validate(body)
    except pydantic.ValidationError as exc:
        form.add(field_errors(exc))
        return None


async def create_webhook(request: web.Request) -> web.Response:
    service = _service(request)
    if acting(request).current is None:
        message = "Choose the organization the endpoint is for in the switcher at the top first."
        return redirect(request, HOOKS, message, error=True)
    data = await request.post()
    limits = {
        "url": MAX_URL_LENGTH + 1,
        "taskId": MAX_ID_CHARS + 1,
        "workflowId": MAX_ID_CHARS + 1,
        "description": MAX_DESCRIPTION_LENGTH + 1,
    }
    form = Form({name: _text(data.get(name), limit) for name, limit in limits.items()})
    form.values["events"] = ""
    known = dict(EVENT_CHOICES)
    events = [e for e in data.getall("events", []) if isinstance(e, str) and e in known]
    if not events:
        form.errors["events"] = "choose at least one"
    body = _validated(form, events)
    if body is not None and not form.errors:
        try:
            endpoint, secret = await service.create(
                actor(request),
                body.url,
                body.events,
                body.description,
                task_id=body.task_id,
                workflow_id=body.workflow_id,
            )
        except ValidationFailed as exc:
            form.add(exc.errors)
        except QuotaExceeded as exc:
            form.problem = str(exc)
        else:
            shown = {"endpoint": endpoint, "secret": secret, "rotated": False}
            return render(request, "webhook_secret.html", shown, section="webhooks")
    return await _hooks_page(request, form, events, status=422)


def _here(endpoint_id: str) -> str:
    return f"{HOOKS}/{endpoint_id}"


async def webhook_page(request: web.Request) -> web.Response:
    service, who = _service(request), actor(request)
    endpoint = await service.get(who, request.match_info["id"])
    cursor = _cursor(request)
    try:
        page = await service.deliveries(who, endpoint.id, PAGE_SIZE, cursor)
    except ValidationFailed:
        cursor = None
        page = await service.deliveries(who, endpoint.id, PAGE_SIZE, None)
    return render(
        request,
        "webhook_detail.html",
        {
            "endpoint": endpoint,
            "deliveries": page.items,
            "next_cursor": page.next_cursor,
            "paged": cursor is not None,
        },
        section="webhooks",
    )


async def webhook_action(request: web.Request) -> web.Response:
    """Test, enable or disable an endpoint, then show it again."""
    service, who = _service(request), actor(request)
    endpoint = await service.get(who, request.match_info["id"])
    here = _here(endpoint.id)
    action = request.match_info["action"]
    try:
        if action == "test":
            await service.test(who, endpoint.id)
            message = "Sent a ping event; it shows in the delivery log below."
        else:
            await service.update(who, endpoint.id, {"enabled": action == "enable"})
            message = f"The endpoint is {action}d."
    except Conflict as exc:
        return redirect(request, here, str(exc).capitalize() + ".", error=True)
    return redirect(request, here, message)


async def rotate_secret(request: web.Request) -> web.Response:
    service = _service(request)
    endpoint, secret = await service.rotate_secret(actor(request), request.match_info["id"])
    shown = {"endpoint": endpoint, "secret": secret, "rotated": True}
    return render(request, "webhook_secret.html", shown, section="webhooks")


async def delete_webhook(request: web.Request) -> web.Response:
    service, who = _service(request), actor(request)
    try:
        endpoint = await service.get(who, request.match_info["id"])
        await service.delete(who, endpoint.id)
    except NotFound:
        return redirect(request, HOOKS, "That endpoint was already deleted.", error=True)
    return redirect(request, HOOKS, f"Deleted the endpoint {endpoint.url} and its delivery log.")


async def redeliver(request: web.Request) -> web.Response:
    service = _service(request)
    endpoint_id = request.match_info["id"]
    here = _here(endpoint_id)
    try:
        await service.redeliver(actor(request), endpoint_id, request.match_info["did"])
    except Conflict as exc:
        return redirect(request, here, str(exc).capitalize() + ".", error=True)
    return redirect(request, here, "Sending the delivery again, with the same webhook-id.")
