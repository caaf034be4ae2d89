"""Assembles the daemon's web application from its components.

A node with the `api` role serves the whole API; other nodes serve only what probes and
scrapers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from taskflowd.api.app import build_app
from taskflowd.api.context import ApiContext
from taskflowd.api.routes import executions, tasks
from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.ratelimit import GcraRateLimiter
from taskflowd.auth.service import AuthService

if TYPE_CHECKING:
    from taskflowd.daemon import Daemon


def build_daemon_app(daemon: Daemon) -> web.Application:
    settings = daemon.settings
    hasher = PasswordHasher(settings.auth.bcrypt_rounds, settings.auth.bcrypt_threads)
    auth = AuthService(daemon.store, hasher, settings.auth, daemon.jwt_secret)
    routes = (tasks.install, executions.install) if settings.has_role("api") else ()
    ctx = ApiContext(settings, daemon.store, auth, GcraRateLimiter(), extra_routes=routes)
    app = build_app(ctx)
    app[tasks.TASKS_KEY] = daemon.tasks

    async def close_hasher(_: web.Application) -> None:
        hasher.close()

    app.on_cleanup.append(close_hasher)
    return app
