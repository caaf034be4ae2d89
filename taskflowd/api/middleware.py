"""The middlewares every request passes, outermost first: request id, access log, errors.

(`security.guard_middleware` comes last, right before the handler.) Response headers —
security headers, the request id, RateLimit-* — are added in an `on_response_prepare`
hook instead, so that they reach every response, including the problem responses the
error middleware builds and responses aiohttp produces itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from taskflowd.api.context import RATE_KEY, REQUEST_ID_KEY
from taskflowd.api.cors import add_cors_headers
from taskflowd.api.problems import ApiError, problem_response, status_title
from taskflowd.auth.service import InvalidCredentials
from taskflowd.auth.tokens import InvalidToken
from taskflowd.config import HttpSettings
from taskflowd.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from taskflowd.logs import request_id_var
from taskflowd.store.errors import DuplicateKey, StoreUnavailable

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BEARER = 'Bearer realm="taskflowd"'
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


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adopt a well-formed incoming X-Request-Id, else make one; log lines carry it."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    token = request_id_var.set(request_id)
    try:
        return await handler(request)
    finally:
        request_id_var.reset(token)


def route_template(request: web.Request, unmatched: str = "(unmatched)") -> str:
    """The matched route's template (`/api/v1/users/{id}`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else unmatched


Report = Callable[[int, float, web.StreamResponse | None], None]


async def observed(request: web.Request, handler: Handler, report: Report) -> web.StreamResponse:
    """Answer `request` with `handler`, then `report(status, seconds, response)` however it
    ended: an HTTP exception's status, 499 when the client went away before the answer,
    500 for anything else raised (`response` is None unless the handler returned one)."""
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499
        raise
    finally:
        report(status, time.perf_counter() - started, response)


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, route template, status, duration. No headers or bodies."""

    def log_line(status: int, seconds: float, _: web.StreamResponse | None) -> None:
        fields = {
            "method": request.method,
            "route": route_template(request),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        access_logger.info(
            "%s %s %s", fields["method"], fields["route"], status, extra={"fields": fields}
        )

    return await observed(request, handler, log_line)


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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a problem response; unexpected ones a 500 that reveals nothing."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_problem(request, exc)
    except Exception as exc:
        mapped = _domain_problem(exc)
        if mapped is not None:
            return mapped
        error_logger.exception("unhandled error in %s %s", request.method, route_template(request))
        return problem_response(
            500,
            "internal_error",
            detail="Something went wrong on our side; quote the requestId when reporting it.",
        )


ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def response_headers(http: HttpSettings) -> ResponseHook:
    """An on_response_prepare hook adding security, request-id, CORS and RateLimit-* headers."""
    tls = bool(http.tls_cert)
    origins = frozenset(http.cors_origins)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers[hdrs.SERVER] = "taskflowd"  # no version banner
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        if tls:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        request_id = request.get(REQUEST_ID_KEY)
        if request_id is not None:
            headers[REQUEST_ID_HEADER] = request_id
        if request.path.startswith("/api/"):
            headers.setdefault(
                "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"
            )
            headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
        if request.path.startswith("/api/v1/auth/"):
            headers[hdrs.CACHE_CONTROL] = "no-store"
        add_cors_headers(request, response, origins)
        rate = request.get(RATE_KEY)
        if rate is not None:
            headers["RateLimit-Limit"] = str(rate.limit)
            headers["RateLimit-Remaining"] = str(rate.decision.remaining)
            headers["RateLimit-Reset"] = str(math.ceil(rate.decision.reset_s))

    return add_headers
