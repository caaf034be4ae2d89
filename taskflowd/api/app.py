"""The aiohttp application of the HTTP API, assembled from an `ApiContext`."""

from __future__ import annotations

from aiohttp import web

from taskflowd import __version__
from taskflowd.api.acting import QUOTAS_KEY
from taskflowd.api.context import CONTEXT_KEY, ApiContext, RouteInstaller
from taskflowd.api.cors import cors_middleware
from taskflowd.api.gate import gate_middleware
from taskflowd.api.middleware import (
    PATH_HEADERS_KEY,
    front_middleware,
    log_access,
    response_headers,
)
from taskflowd.api.openapi import REGISTRY_KEY, ApiRegistry
from taskflowd.api.responses import PAGES_KEY, PageBodies
from taskflowd.api.routes import api_keys, audit, auth, meta, orgs, users
from taskflowd.api.security import IN_FLIGHT_KEY, InFlight
from taskflowd.audit.service import AuditService
from taskflowd.auth.principals import PRINCIPAL_EVENT
from taskflowd.services.orgs import OrgService
from taskflowd.services.quotas import QuotaBook


def build_app(ctx: ApiContext) -> web.Application:
    """The API with its own routes plus those `ctx.extra_routes` install.

    Middlewares, outermost first: the front (request id, problem responses, the access
    log and `ctx.reports` such as metrics, which see final statuses), CORS preflight
    (when origins are configured), the gate (rate limits, authentication, role, the org's
    limit, the audit origin: see `taskflowd.api.gate`). Run it with
    `web.AppRunner(app, access_log=None)`: the front already logs one line per request.
    """
    cors = ctx.settings.http.cors_origins
    app = web.Application(
        middlewares=[
            front_middleware((log_access, *ctx.reports)),
            *((cors_middleware(cors),) if cors else ()),
            gate_middleware,
        ],
        client_max_size=ctx.settings.http.max_body_bytes,
    )
    app[CONTEXT_KEY] = ctx
    app[IN_FLIGHT_KEY] = InFlight()
    app[PAGES_KEY] = PageBodies()
    registry = ApiRegistry(app, title="taskflowd", version=__version__)
    app[REGISTRY_KEY] = registry
    app[PATH_HEADERS_KEY] = {}
    app.on_response_prepare.append(response_headers(ctx.settings.http, app[PATH_HEADERS_KEY]))
    if ctx.quotas is None:
        app[QUOTAS_KEY] = QuotaBook(ctx.store, ctx.settings.orgs.quotas())
        ctx.auth.events.on(PRINCIPAL_EVENT, app[QUOTAS_KEY].on_event)
    else:
        app[QUOTAS_KEY] = ctx.quotas
    app[orgs.ORGS_KEY] = OrgService(ctx.store, ctx.settings.orgs.quotas(), ctx.auth.events)
    app[audit.AUDIT_KEY] = AuditService(ctx.store.audit)
    accounts: tuple[RouteInstaller, ...] = ()
    if ctx.accounts:
        accounts = (auth.install, users.install, api_keys.install, orgs.install, audit.install)
    for install in (meta.install, *accounts, *ctx.extra_routes):
        install(registry)
    return app
