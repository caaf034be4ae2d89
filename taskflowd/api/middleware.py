"""The outermost middleware of every request: its id, its problem responses, its
compression, and what the access log and metrics learn of it.

(`gate.gate_middleware` comes last, right before the handler.) Response headers —
security headers, the request id, RateLimit-* — are added in an `on_response_prepare`
hook instead, so that they reach every response, including the problem responses the
front middleware builds and responses aiohttp produces itself.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from logging import LogRecord
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web import ContentCoding

from taskflowd.api.context import RATE_KEY, REQUEST_ID_KEY, Report
from taskflowd.api.cors import add_cors_headers
from taskflowd.api.problems import PROBLEM_CONTENT_TYPE, ApiError, problem_response, status_title
from taskflowd.auth.service import InvalidCredentials
from taskflowd.auth.tokens import InvalidToken
from taskflowd.config import HttpSettings
from taskflowd.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from taskflowd.logs import VERBATIM, request_id_var
from taskflowd.store.errors import DuplicateKey, StoreUnavailable

REQUEST_ID_HEADER = "X-Request-Id"
COMPRESS_OVER_BYTES = 1024
_COMPRESSIBLE = frozenset({"application/json", PROBLEM_CONTENT_TYPE, "application/x-ndjson"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BEARER = 'Bearer realm="taskflowd"'
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
_PASSED_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER, hdrs.WWW_AUTHENTICATE, hdrs.LOCATION)
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
# Errors of the services, each with its status and the headers its problem carries.
_DOMAIN_ERRORS: tuple[tuple[type[Exception], int, dict[str, str]], ...] = (
    (NotFound, 404, {}),
    (Conflict, 409, {}),
    (DuplicateKey, 409, {}),
    (Forbidden, 403, {}),
    (InvalidCredentials, 401, {hdrs.WWW_AUTHENTICATE: _BEARER}),
    (InvalidToken, 401, {hdrs.WWW_AUTHENTICATE: f'{_BEARER}, error="invalid_token"'}),
    (StoreUnavailable, 503, {hdrs.RETRY_AFTER: "5"}),
)

access_logger = logging.getLogger("taskflowd.api.access")
error_logger = logging.getLogger("taskflowd.api")


class RequestIds:
    """Request ids unique per process: a random prefix and a counter (cheaper than a
    UUID per request, and still unique across nodes and restarts in practice)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


def route_template(request: web.Request, unmatched: str = "(unmatched)") -> str:
    """The matched route's template (`/api/v1/users/{id}`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else unmatched


_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_PROBES = frozenset(("/health", "/ready", "/metrics"))
"""Routes that probes and scrapers call every few seconds: their answers are logged at
DEBUG (a failed one at INFO), so they do not drown the requests of people and programs."""


def log_access(request: web.Request, status: int, seconds: float, _: object) -> None:
    """One access log line per request: method, route template, status, duration. No
    headers, no bodies, no raw paths (they may carry ids or tokens), nothing else a client
    chose (another method is `OTHER`), so the line needs no redaction. Successful probes
    (`_PROBES`) are logged at DEBUG."""
    route = route_template(request)
    level = logging.DEBUG if status < 400 and route in _PROBES else logging.INFO
    if not access_logger.isEnabledFor(level):
        return
    method = request.method if request.method in _METHODS else "OTHER"
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }
    access_logger.handle(_access_record(level, (method, route, status), fields))


@functools.cache
def _first_record(level: int) -> Mapping[str, Any]:
    """The attributes of a first access record of `level`, which every later one copies
    (never changed: each copy is a dict of its own)."""
    first = access_logger.makeRecord(
        access_logger.name, level, __file__, 0, "%s %s %s", (), None, extra={VERBATIM: True}
    )
    return dict(first.__dict__)


def _access_record(level: int, args: tuple[str, str, int], fields: dict[str, Any]) -> LogRecord:
    """An access log record: a copy of the level's first record (made by `makeRecord`)
    with its own time, arguments and fields. Not `Logger.log`, which would look up the
    calling frame on every request for a source location no format shows, nor a new
    `LogRecord`, whose constructor works out a dozen attributes that are the same on
    every line (the logger, level, file, thread and process)."""
    made = _first_record(level)
    record = LogRecord.__new__(LogRecord)
    attributes = record.__dict__
    attributes.update(made)
    now = time.time()  # the three times as LogRecord works them out
    since_first = (now - attributes["created"]) * 1000
    attributes["created"] = now
    attributes["msecs"] = int((now - int(now)) * 1000) + 0.0
    attributes["relativeCreated"] += since_first
    attributes["args"] = args
    attributes["fields"] = fields
    return record


def front_middleware(reports: Sequence[Report] = (log_access,)) -> Middleware:
    """The outermost middleware: gives the request its id (a well-formed incoming
    X-Request-Id is adopted), turns every failure into a problem response (an unexpected
    one into a 500 that reveals nothing), and reports the final status and duration of
    each request to `reports` (the access log, metrics): 499 when the client went away
    before the answer."""
    ids = RequestIds()
    observers = tuple(reports)

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER)
        if incoming is not None and _REQUEST_ID.fullmatch(incoming):
            request_id = incoming
        else:
            request_id = ids.next()
        request[REQUEST_ID_KEY] = request_id
        request[RATE_KEY] = None  # the gate's rate limits set it; `get` misses cost more
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response: web.StreamResponse | None = None
        try:
            try:
                response = await handler(request)
            except Exception as exc:
                response = _answer(request, exc)
            status = response.status
            _compress(request, response)
            return response
        except web.HTTPException as exc:  # redirects and other non-error statuses
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499
            raise
        finally:
            elapsed = time.perf_counter() - started
            for report in observers:
                report(request, status, elapsed, response)
            request_id_var.reset(token)

    return front


def _compress(request: web.Request, response: web.StreamResponse) -> None:
    """gzip JSON bodies over 1 KiB for clients that accept it."""
    if not isinstance(response, web.Response):
        return
    body = response.body
    if not isinstance(body, bytes) or len(body) <= COMPRESS_OVER_BYTES:
        return
    if response.content_type not in _COMPRESSIBLE:
        return
    response.headers[hdrs.VARY] = hdrs.ACCEPT_ENCODING
    if "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "").lower():
        response.enable_compression(ContentCoding.gzip)


def _answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The problem response for what the handler raised (a redirect or another status
    below 400 is raised again). Called in the `except` block, so a 500 logs the error
    with its traceback; not a coroutine around the handler, which would cost every
    request one more frame."""
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return _http_problem(request, exc)
    mapped = _domain_problem(exc)
    if mapped is not None:
        return mapped
    if isinstance(exc, ConnectionResetError) and _client_gone(request):
        # The client hung up while its request was being read: nobody is there to
        # answer, and it is not our error (reported as 499, like a cancelled request).
        return web.Response(status=499)
    error_logger.exception("unhandled error in %s %s", request.method, route_template(request))
    return problem_response(
        500,
        "internal_error",
        detail="Something went wrong on our side; quote the requestId when reporting it.",
    )


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _http_problem(request: web.Request, exc: web.HTTPException) -> web.Response:
    headers = {str(k): exc.headers[k] for k in _PASSED_HEADERS if k in exc.headers}
    code = _HTTP_CODES.get(exc.status) or status_title(exc.status).lower().replace(" ", "_")
    if exc.status == 404:
        detail = "Nothing is here; see /api/openapi.json for the routes."
    elif exc.status == 405:
        detail = f"{request.method} is not allowed here; allowed: {headers.get(hdrs.ALLOW, '')}."
    else:
        detail = status_title(exc.status)
    return problem_response(exc.status, code, detail=detail, headers=headers)


def _domain_problem(exc: Exception) -> web.Response | None:
    if isinstance(exc, ValidationFailed):
        return problem_response(
            422, "validation_failed", detail="The request has invalid fields.", errors=exc.errors
        )
    for error_type, status, headers in _DOMAIN_ERRORS:
        if isinstance(exc, error_type):
            code = getattr(exc, "code", "error")
            return problem_response(status, code, detail=str(exc), headers=headers)
    return None


ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]
PathHeaders = Callable[[web.Request, web.StreamResponse], None]
PATH_HEADERS_KEY = web.AppKey("taskflowd.api.path_headers", dict[str, PathHeaders])
"""Headers of the responses under a path prefix (`/static/`: the dashboard's caching
rules), added by the one `response_headers` hook: one hook per response rather than
one for each part of the application."""


def response_headers(http: HttpSettings, by_prefix: dict[str, PathHeaders]) -> ResponseHook:
    """An on_response_prepare hook adding security, request-id, CORS and RateLimit-*
    headers, then those `by_prefix` adds to the responses under its prefixes (the dict is
    read on each response: parts of the application fill it once the hook is made)."""
    origins = frozenset(http.cors_origins)
    always = {
        hdrs.SERVER: "taskflowd",  # no version banner
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    if http.tls_cert:
        always["Strict-Transport-Security"] = "max-age=31536000"

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers.update(always)
        request_id = request.get(REQUEST_ID_KEY)
        if request_id is not None:
            headers[REQUEST_ID_HEADER] = request_id
        path = request.path
        if path.startswith("/api/"):
            headers.setdefault("Content-Security-Policy", _API_CSP)
            if path.startswith("/api/v1/auth/"):
                headers[hdrs.CACHE_CONTROL] = "no-store"
            else:
                headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
        else:
            for prefix, add in by_prefix.items():
                if path.startswith(prefix):
                    add(request, response)
        if origins:
            add_cors_headers(request, response, origins)
        rate = request.get(RATE_KEY)
        if rate is not None:
            headers["RateLimit-Limit"] = str(rate.limit)
            headers["RateLimit-Remaining"] = str(rate.decision.remaining)
            headers["RateLimit-Reset"] = str(math.ceil(rate.decision.reset_s))

    return add_headers
