"""The aiohttp application of the HTTP API, assembled from an `ApiContext`."""

from __future__ import annotations

from aiohttp import web

from taskflowd import __version__
from taskflowd.api.context import CONTEXT_KEY, ApiContext
from taskflowd.api.cors import cors_middleware
from taskflowd.api.middleware import (
    access_log_middleware,
    error_middleware,
    request_id_middleware,
    response_headers,
)
from taskflowd.api.openapi import REGISTRY_KEY, ApiRegistry
from taskflowd.api.routes import auth, meta, users
from taskflowd.api.security import guard_middleware


def build_app(ctx: ApiContext) -> web.Application:
    """The API with its own routes plus those `ctx.extra_routes` install.

    Middlewares, outermost first: request id, access log, `ctx.extra_middlewares` (e.g.
    metrics, which must see final statuses), errors, CORS preflight, guard (rate limit,
    authentication, role). Run it with `web.AppRunner(app, access_log=None)`:
    the access log middleware already writes one line per request.
    """
    app = web.Application(
        middlewares=[
            request_id_middleware,
            access_log_middleware,
            *ctx.extra_middlewares,
            error_middleware,
            cors_middleware(ctx.settings.http.cors_origins),
            guard_middleware,
        ],
        client_max_size=ctx.settings.http.max_body_bytes,
    )
    app[CONTEXT_KEY] = ctx
    registry = ApiRegistry(app, title="taskflowd", version=__version__)
    app[REGISTRY_KEY] = registry
    app.on_response_prepare.append(response_headers(ctx.settings.http))
    accounts = (auth.install, users.install) if ctx.accounts else ()
    for install in (meta.install, *accounts, *ctx.extra_routes):
        install(registry)
    return app
