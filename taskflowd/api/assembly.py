"""Assembles the daemon's web application from its components.

A node with the `api` role serves the whole API; other nodes serve only what probes and
scrapers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from taskflowd.api.app import build_app
from taskflowd.api.context import ApiContext
from taskflowd.api.routes import docs, executions, ops, tasks
from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.ratelimit import GcraRateLimiter
from taskflowd.auth.service import AuthService
from taskflowd.metrics import metrics_middleware

if TYPE_CHECKING:
    from taskflowd.daemon import Daemon


def build_daemon_app(daemon: Daemon) -> web.Application:
    settings = daemon.settings
    hasher = PasswordHasher(settings.auth.bcrypt_rounds, settings.auth.bcrypt_threads)
    auth = AuthService(daemon.store, hasher, settings.auth, daemon.jwt_secret)
    if daemon.metrics is None:
        raise RuntimeError("the daemon's metrics must exist before its web app")
    ops_ctx = ops.OpsContext.build(
        daemon.store,
        daemon.queue,
        daemon.metrics,
        metrics_token=settings.metrics.token,
        node_ttl_s=settings.cluster.node_ttl_s,
    )
    routes = (tasks.install, executions.install) if settings.has_role("api") else ()
    ctx = ApiContext(
        settings,
        daemon.store,
        auth,
        GcraRateLimiter(),
        extra_routes=(ops.mount(ops_ctx), *routes),
        extra_middlewares=(metrics_middleware(daemon.metrics),),
    )
    app = build_app(ctx)
    docs.install(app)
    app[tasks.TASKS_KEY] = daemon.tasks

    async def close_hasher(_: web.Application) -> None:
        hasher.close()

    app.on_cleanup.append(close_hasher)
    return app
