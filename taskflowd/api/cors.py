"""CORS for the origins listed in `http.cors_origins` (exact matches; never a wildcard).

Credentials are bearer tokens sent explicitly, never cookies, so there is no
`Access-Control-Allow-Credentials`. Preflights are answered before authentication.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, If-None-Match, Idempotency-Key, X-Request-Id"
EXPOSED_HEADERS = (
    "ETag, Location, Retry-After, X-Request-Id, RateLimit-Limit, RateLimit-Remaining, "
    "RateLimit-Reset, WWW-Authenticate"
)
PREFLIGHT_MAX_AGE_S = 600


def allowed_origin(request: web.Request, origins: frozenset[str]) -> str | None:
    """The request's Origin when it is one of `origins`."""
    origin = request.headers.get(hdrs.ORIGIN)
    return origin if origin is not None and origin in origins else None


def cors_middleware(origins: Iterable[str]) -> Middleware:
    """Answers preflights from allowed origins with 204; other requests pass through."""
    allowed = frozenset(origins)

    @web.middleware
    async def cors_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = allowed_origin(request, allowed)
        preflight = hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        if request.method != hdrs.METH_OPTIONS or origin is None or not preflight:
            return await handler(request)
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_S),
            },
        )

    return cors_preflight


def add_cors_headers(
    request: web.Request, response: web.StreamResponse, origins: frozenset[str]
) -> None:
    """Let an allowed origin read the response, errors included."""
    if not origins:
        return
    response.headers[hdrs.VARY] = hdrs.ORIGIN
    origin = allowed_origin(request, origins)
    if origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
