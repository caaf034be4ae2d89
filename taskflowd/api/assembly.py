"""Assembles the daemon's web application from its components."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from taskflowd.daemon import Daemon


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_daemon_app(daemon: Daemon) -> web.Application:
    app = web.Application()
    app.router.add_get("/health", _health)
    return app
