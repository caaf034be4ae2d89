"""What the dashboard's views share: their collaborators, the signed-in user, rendering
and redirects with flash messages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web

from taskflowd.audit.service import AuditService
from taskflowd.auth.ratelimit import RateLimiter
from taskflowd.auth.service import AuthService
from taskflowd.config import Settings
from taskflowd.dashboard.sessions import (
    FLASH_COOKIE,
    IDLE_TTL_S,
    SESSION_COOKIE,
    Flash,
    Session,
    Sessions,
)
from taskflowd.dashboard.templates import TEMPLATES_KEY
from taskflowd.domain.entities import User
from taskflowd.domain.enums import Role
from taskflowd.events import EventBus
from taskflowd.services.orgs import OrgService
from taskflowd.services.quotas import QuotaBook
from taskflowd.services.stats import StatsService
from taskflowd.services.tasks import TaskService
from taskflowd.webhooks.service import WebhookService
from taskflowd.workflows.service import WorkflowService

PREFIX = "/dashboard"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Built once per application by `install_dashboard`."""

    settings: Settings
    auth: AuthService
    tasks: TaskService
    stats: StatsService
    sessions: Sessions
    rate_limiter: RateLimiter
    events: EventBus
    handler_names: tuple[str, ...]
    orgs: OrgService
    quotas: QuotaBook
    workflows: WorkflowService
    audit: AuditService
    webhooks: WebhookService | None = None
    """None on a node built without webhooks: no Webhooks pages there."""
    assets: dict[str, str] = field(default_factory=dict)
    """Static file name → content hash, filled at start-up, for cache-busting URLs."""


DASHBOARD_KEY = web.AppKey("taskflowd.dashboard", Dashboard)
VIEWER_KEY = web.RequestKey("taskflowd.dashboard.viewer", User)
SESSION_KEY = web.RequestKey("taskflowd.dashboard.session", Session)
FLASH_KEY = web.RequestKey("taskflowd.dashboard.flash", Flash)
PAGE_EXTRAS_KEY = web.RequestKey("taskflowd.dashboard.page-extras", dict[str, Any])
"""Context every page of this request gets (the org switcher's), set by the middleware."""


def dashboard(request: web.Request) -> Dashboard:
    return request.config_dict[DASHBOARD_KEY]


def viewer(request: web.Request) -> User:
    """The signed-in user (the middleware guarantees one on every non-public page)."""
    return request[VIEWER_KEY]


def is_admin(user: User) -> bool:
    return user.role is Role.ADMIN


def cookie_secure(request: web.Request) -> bool:
    return request.secure or bool(dashboard(request).settings.http.tls_cert)


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    """HttpOnly, SameSite=Strict, Secure under TLS; every dashboard cookie is one of these."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=cookie_secure(request),
    )


def clear_cookie(request: web.Request, response: web.StreamResponse, name: str) -> None:
    response.del_cookie(
        name, path="/", httponly=True, samesite="Strict", secure=cookie_secure(request)
    )


def csrf_token(request: web.Request) -> str:
    session = request.get(SESSION_KEY)
    return dashboard(request).sessions.csrf_token(session) if session is not None else ""


def asset_url(request: web.Request, name: str) -> str:
    version = dashboard(request).assets.get(name)
    return f"/static/{name}?v={version}" if version else f"/static/{name}"


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    section: str = "",
) -> web.Response:
    """A page with the shared context: user, CSRF token, flash message, asset URLs."""
    user = request.get(VIEWER_KEY)
    flash = request.get(FLASH_KEY)
    page: dict[str, Any] = {
        "user": user,
        "is_admin": user is not None and is_admin(user),
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "flash": flash,
        "section": section,
        "asset": lambda name: asset_url(request, name),
        "path": request.path,
        "rendered_at": f"{time.time():.3f}",
        "acting": None,
        "can_write": False,
        "can_manage": False,
        "has_webhooks": dashboard(request).webhooks is not None,
    }
    page.update(request.get(PAGE_EXTRAS_KEY) or {})
    page.update(context or {})
    text = request.config_dict[TEMPLATES_KEY].render(template, page)
    response = web.Response(text=text, status=status, content_type="text/html")
    if flash is not None:
        clear_cookie(request, response, FLASH_COOKIE)
    return response


def redirect(
    request: web.Request,
    location: str,
    message: str | None = None,
    *,
    error: bool = False,
    link: tuple[str, str] | None = None,
) -> web.Response:
    """303 See Other to `location` (a path on this server), with an optional flash message
    and a link (a dashboard path and its text) to show after it."""
    response = web.Response(status=303, headers={hdrs.LOCATION: location})
    if message:
        value = dashboard(request).sessions.flash("error" if error else "ok", message, link)
        set_cookie(request, response, FLASH_COOKIE, value, 120)
    return response


def safe_next(value: str | None) -> str:
    """A post-login destination: a dashboard path only, never another site."""
    if value and value.startswith(f"{PREFIX}/") and "//" not in value and "\\" not in value:
        return value
    return f"{PREFIX}/"


def start_session(request: web.Request, response: web.StreamResponse, user: User) -> None:
    sessions = dashboard(request).sessions
    value = sessions.issue(user.id, user.token_version)
    set_cookie(request, response, SESSION_COOKIE, value, IDLE_TTL_S)
