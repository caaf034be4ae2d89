"""Mounts the web dashboard on the daemon's application.

`/dashboard/…` is a sub-application with its own middleware (session, CSRF, HTML error
pages) and headers (strict Content-Security-Policy); `/static/…` serves `taskflowd/web/static`
with immutable caching for versioned URLs; `/api/v1/events` is the event stream; `/`
leads to the dashboard.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from taskflowd.api.acting import QUOTAS_KEY
from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.middleware import PATH_HEADERS_KEY
from taskflowd.api.openapi import deferred
from taskflowd.api.parts import NodeParts
from taskflowd.api.routes.audit import AUDIT_KEY
from taskflowd.api.routes.ops import OPS_KEY
from taskflowd.api.routes.orgs import ORGS_KEY
from taskflowd.auth.service import AuthService
from taskflowd.dashboard.context import DASHBOARD_KEY, PREFIX, Dashboard, redirect
from taskflowd.dashboard.live import RecentEvents, StatsFeed, TaskDirectory
from taskflowd.dashboard.middleware import dashboard_headers, dashboard_middleware, static_headers
from taskflowd.dashboard.series import ThroughputSeries
from taskflowd.dashboard.sessions import Sessions
from taskflowd.dashboard.socket import EVENTS_PATH, LIVE_KEY, Live, events_socket
from taskflowd.dashboard.templates import TEMPLATES_KEY, Templates
from taskflowd.resources import data_dir
from taskflowd.services.stats import StatsService

RECENT_EVENTS_TASK = "dashboard.recent-events"

_ID = "{id:[0-9A-Za-z-]+}"
_KEY = "{id:[0-9A-Za-z-]{1,64}}"
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", "/", "overview", "overview_page"),
    ("GET", "/tasks", "tasks", "tasks_page"),
    ("GET", "/tasks/new", "tasks", "new_task_page"),
    ("POST", "/tasks/new", "tasks", "create_task"),
    ("GET", "/tasks/preview", "tasks", "cron_preview"),
    ("GET", f"/tasks/{_ID}", "tasks", "task_page"),
    ("GET", f"/tasks/{_ID}/edit", "tasks", "edit_task_page"),
    ("POST", f"/tasks/{_ID}/edit", "tasks", "update_task"),
    ("POST", f"/tasks/{_ID}/{{action:run|pause|resume|delete}}", "tasks", "task_action"),
    ("GET", f"/tasks/{_ID}/runs/new", "tasks", "run_task_page"),
    ("POST", f"/tasks/{_ID}/runs/new", "tasks", "run_task"),
    ("GET", "/executions", "runs", "executions_page"),
    ("GET", f"/executions/{_ID}", "runs", "execution_page"),
    ("POST", f"/executions/{_ID}/cancel", "runs", "cancel_execution"),
    ("GET", "/dead-letter", "runs", "dead_letter_page"),
    ("POST", "/dead-letter", "runs", "dead_letter_action"),
    ("GET", "/login", "account", "login_page"),
    ("POST", "/login", "account", "login"),
    ("POST", "/logout", "account", "logout"),
    ("GET", "/profile", "account", "profile_page"),
    ("POST", "/profile/password", "account", "change_password"),
    ("GET", "/users", "account", "users_page"),
    ("POST", "/users", "account", "create_user"),
    ("POST", f"/users/{_ID}", "account", "update_user"),
    ("GET", "/api-keys", "keys", "api_keys_page"),
    ("POST", "/api-keys", "keys", "create_api_key"),
    ("POST", f"/api-keys/{_ID}/revoke", "keys", "revoke_api_key"),
    ("POST", "/org/switch", "orgs", "switch_org"),
    ("GET", "/org", "orgs", "org_page"),
    ("POST", "/org/quotas", "orgs", "update_quotas"),
    ("GET", "/org/members", "orgs", "members_page"),
    ("POST", "/org/members", "orgs", "invite_member"),
    ("POST", f"/org/members/{_ID}/{{action:role|remove}}", "orgs", "member_action"),
    ("GET", "/workflows", "workflows", "workflows_page"),
    ("GET", f"/workflows/{_KEY}", "workflows", "workflow_page"),
    ("POST", f"/workflows/{_KEY}/run", "workflows", "run_workflow"),
    ("POST", f"/workflow-runs/{_KEY}/{{action:cancel|retry}}", "workflows", "run_action"),
    ("GET", "/audit", "audit", "audit_page"),
    ("GET", "/webhooks", "webhooks", "webhooks_page"),
    ("POST", "/webhooks", "webhooks", "create_webhook"),
    ("GET", f"/webhooks/{_KEY}", "webhooks", "webhook_page"),
    ("POST", f"/webhooks/{_KEY}/{{action:test|enable|disable}}", "webhooks", "webhook_action"),
    ("POST", f"/webhooks/{_KEY}/rotate-secret", "webhooks", "rotate_secret"),
    ("POST", f"/webhooks/{_KEY}/delete", "webhooks", "delete_webhook"),
    (
        "POST",
        f"/webhooks/{_KEY}/deliveries/{{did:[0-9A-Za-z-]{{1,64}}}}/redeliver",
        "webhooks",
        "redeliver",
    ),
)
"""The dashboard's pages under /dashboard: method, path, the `views_<name>` module that
handles it and the handler's name. A module is imported, off the event loop, with the
first request for one of its pages (start-up time, issue 12)."""


def install_dashboard(
    app: web.Application,
    node: NodeParts,
    auth: AuthService | None = None,
    stats: StatsService | None = None,
    web_dir: Path | None = None,
) -> None:
    """Add the dashboard to `app` (built by `build_app`, so it has its ApiContext).

    Does nothing on a node without the `api` role. `auth` defaults to the API's
    AuthService, `stats` to the operations endpoints' StatsService (or a new one).
    """
    settings = node.settings
    if not settings.has_role("api"):
        return
    api = app[CONTEXT_KEY]
    store = node.store
    if stats is None and OPS_KEY in app:
        stats = app[OPS_KEY].stats
    if stats is None:
        stats = StatsService(store.db, store, node.queue.depths, settings.cluster.node_ttl_s)
    series = ThroughputSeries(store.db)
    ctx = Dashboard(
        settings=settings,
        auth=auth or api.auth,
        tasks=node.tasks,
        stats=stats,
        sessions=Sessions(node.jwt_secret),
        rate_limiter=api.rate_limiter,
        events=node.events,
        handler_names=tuple(node.handlers.names()),
        orgs=app[ORGS_KEY],
        quotas=app[QUOTAS_KEY],
        workflows=node.workflows,
        audit=app[AUDIT_KEY],
        webhooks=node.webhooks,
    )
    app[DASHBOARD_KEY] = ctx
    recent = RecentEvents(node.events)
    app[LIVE_KEY] = Live(TaskDirectory(store), StatsFeed(stats, series), recent)
    root = web_dir or data_dir("web")
    app.add_subapp(PREFIX, _dashboard_app(root))
    app.router.add_get("/", to_dashboard)
    app.router.add_get(PREFIX, to_dashboard)
    app.router.add_static("/static/", root / "static", name="static")
    app.router.add_get("/favicon.ico", _favicon(root / "static" / "favicon.svg"))
    app.router.add_get(EVENTS_PATH, events_socket)
    app[PATH_HEADERS_KEY]["/static/"] = static_headers

    async def load_assets(_: web.Application) -> None:
        ctx.assets.update(await asyncio.to_thread(asset_versions, root / "static"))

    async def record_events(_: web.Application) -> AsyncIterator[None]:
        node.supervisor.spawn(RECENT_EVENTS_TASK, recent.run)
        yield
        await node.supervisor.cancel(RECENT_EVENTS_TASK)

    app.on_startup.append(load_assets)
    app.cleanup_ctx.append(record_events)


async def to_dashboard(request: web.Request) -> web.Response:
    """`/` and `/dashboard` lead to the overview (or the sign-in page)."""
    return redirect(request, f"{PREFIX}/")


def _favicon(path: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Browsers ask for /favicon.ico whatever the page says; answer with the SVG icon."""

    async def favicon(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            path, headers={hdrs.CONTENT_TYPE: "image/svg+xml", hdrs.CACHE_CONTROL: "max-age=86400"}
        )

    return favicon


def _dashboard_app(root: Path) -> web.Application:
    sub = web.Application(middlewares=[dashboard_middleware])
    templates = Templates(root / "templates")
    sub[TEMPLATES_KEY] = templates
    sub.middlewares.insert(0, _templates_first(templates))  # outermost: error pages need them too
    for method, path, views, name in PAGES:
        handler = deferred(f"taskflowd.dashboard.views_{views}", name)
        if method == "GET":
            sub.router.add_get(path, handler)
        else:
            sub.router.add_post(path, handler)
    sub.on_response_prepare.append(dashboard_headers)

    return sub


def _templates_first(templates: Templates) -> Middleware:
    """Load the templates before the first dashboard request is handled."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        await templates.load()
        return await handler(request)

    return middleware


def asset_versions(static: Path) -> dict[str, str]:
    """A short content hash of each static file, by its path under `static`."""
    versions = {}
    for path in sorted(static.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            versions[path.relative_to(static).as_posix()] = digest
    return versions
