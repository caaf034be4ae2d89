"""The viewer's API keys: list, create (the key is shown once), revoke.

A new key is rendered in the response to the form's POST and nowhere else: not in a URL,
a cookie, a log line or server memory, so it cannot be read back by a later request on
any node. The page is `no-store` like every dashboard page; reloading it posts the form
again and so makes another key, never shows this one again.
"""

from __future__ import annotations

import re
from datetime import timedelta

from aiohttp import web

from taskflowd.auth.api_keys import MAX_KEYS_PER_USER, MAX_NAME_LENGTH
from taskflowd.dashboard.acting import actor
from taskflowd.dashboard.context import PREFIX, dashboard, redirect, render
from taskflowd.dashboard.forms import Form
from taskflowd.dashboard.middleware import origin_of
from taskflowd.domain.entities import ApiKey, utcnow
from taskflowd.domain.errors import Conflict, FieldError, NotFound, ValidationFailed

EXPIRY_CHOICES = (
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
    ("never", "Never"),
)
DEFAULT_EXPIRY = "90"
LABELS = {"name": "Name", "expiresIn": "Expires"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _blank_form() -> Form:
    return Form({"name": "", "expiresIn": DEFAULT_EXPIRY})


async def _keys_page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    page = await ctx.auth.api_keys.list(user, MAX_KEYS_PER_USER, None)
    return render(
        request,
        "api_keys.html",
        {
            "keys": page.items,
            "now": utcnow(),
            "form": form,
            "labels": LABELS,
            "expiry_options": EXPIRY_CHOICES,
            "max_keys": MAX_KEYS_PER_USER,
        },
        status=status,
        section="profile",
    )


async def api_keys_page(request: web.Request) -> web.Response:
    return await _keys_page(request, _blank_form())


def _read(form: Form) -> list[FieldError]:
    """What the service does not check itself: one line of text, a listed expiry."""
    errors = []
    if _CONTROL.search(form.values["name"]):
        errors.append(FieldError("name", "must be one line of text"))
    if form.values["expiresIn"] not in dict(EXPIRY_CHOICES):
        errors.append(FieldError("expiresIn", "choose one of the listed times"))
    return errors


async def create_api_key(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    data = await request.post()
    values = {}
    for name, limit in (("name", MAX_NAME_LENGTH + 1), ("expiresIn", 16)):
        raw = data.get(name, "")
        values[name] = raw[:limit] if isinstance(raw, str) else ""
    form = Form(values)
    form.add(_read(form))
    if not form.errors:
        choice = values["expiresIn"]
        expires_at = None if choice == "never" else utcnow() + timedelta(days=int(choice))
        try:
            key, raw_key = await ctx.auth.api_keys.create(user, values["name"], expires_at)
        except ValidationFailed as exc:
            form.add(exc.errors)
        except Conflict as exc:
            form.problem = str(exc)
        else:
            shown = {"key": key, "raw_key": raw_key, "origin": origin_of(request)}
            return render(request, "api_key_created.html", shown, section="profile")
    return await _keys_page(request, form, status=422)


async def _own_key(request: web.Request, key_id: str) -> ApiKey | None:
    ctx, user = dashboard(request), actor(request)
    page = await ctx.auth.api_keys.list(user, MAX_KEYS_PER_USER, None)
    return next((k for k in page.items if k.id == key_id), None)


async def revoke_api_key(request: web.Request) -> web.Response:
    """Revoke one of the viewer's own keys (the list shows no one else's)."""
    here = f"{PREFIX}/api-keys"
    key = await _own_key(request, request.match_info["id"])
    if key is not None:
        try:
            await dashboard(request).auth.api_keys.revoke(actor(request), key.id)
        except NotFound:  # revoked by another request in between
            key = None
    if key is None:
        return redirect(request, here, "That key was already revoked.", error=True)
    return redirect(request, here, f"Revoked “{key.name}” ({key.prefix}…); it no longer works.")
