"""The HTTP server as a component: aiohttp's AppRunner and TCPSite, optional TLS."""

from __future__ import annotations

import ssl
from collections.abc import Callable

from aiohttp import web

from taskflowd.config import HttpSettings

MAX_REQUEST_LINE_BYTES = 32 * 1024
"""Longest request line read (aiohttp's default is 8190). Every query string the OpenAPI
document allows must fit, percent-encoded (up to 12 bytes per character): a longer line
is refused before the application sees it, with a plain-text 400 no problem document
describes."""


class HttpServer:
    """Serves the application that `build_app` returns, built when the server starts (so
    it can use what earlier components set up, such as the JWT secret)."""

    def __init__(self, build_app: Callable[[], web.Application], settings: HttpSettings) -> None:
        self._build_app = build_app
        self.app: web.Application | None = None
        self.settings = settings
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.settings.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        return context

    async def start(self) -> None:
        self.app = self._build_app()
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            max_line_size=MAX_REQUEST_LINE_BYTES,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.settings.host,
            self.settings.port,
            ssl_context=self._ssl_context(),
        )
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
