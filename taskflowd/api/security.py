"""Who is calling and how often: bearer authentication, roles and rate limits.

`guard_middleware` enforces what each registered `Operation` declares: public routes are
limited per client address; USER and ADMIN routes authenticate the bearer token (from
the Authorization header only), then limit per user, then check the role. Handlers read
the caller with `current_user(request)`.
"""

from __future__ import annotations

import logging
import math

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from taskflowd.api.context import CONTEXT_KEY, RATE_KEY, USER_KEY, RateState
from taskflowd.api.openapi import REGISTRY_KEY, Access
from taskflowd.api.problems import ApiError
from taskflowd.auth.ratelimit import RateLimiterUnavailable
from taskflowd.auth.tokens import InvalidToken
from taskflowd.domain.entities import User
from taskflowd.domain.enums import Role

MAX_TOKEN_LENGTH = 4096
_REALM = 'Bearer realm="taskflowd"'
log = logging.getLogger("taskflowd.api.security")


def unauthorized(detail: str, *, token_given: bool) -> ApiError:
    """A 401 with the Bearer challenge; `error="invalid_token"` when a token was sent."""
    challenge = f'{_REALM}, error="invalid_token"' if token_given else _REALM
    return ApiError(
        401,
        "invalid_token" if token_given else "unauthorized",
        detail=detail,
        headers={hdrs.WWW_AUTHENTICATE: challenge},
    )


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer …` header; None without the header."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise unauthorized(
            "Send the access token as 'Authorization: Bearer <token>'.", token_given=True
        )
    return token


async def authenticate(request: web.Request) -> User:
    """The caller, from the bearer token; raises a 401 ApiError when there is none."""
    if USER_KEY in request:
        return request[USER_KEY]
    token = bearer_token(request)
    if token is None:
        raise unauthorized("This endpoint needs a bearer access token.", token_given=False)
    try:
        user = await request.app[CONTEXT_KEY].auth.authenticate(token)
    except InvalidToken:
        raise unauthorized(
            "The access token is invalid, expired or revoked; log in again.", token_given=True
        ) from None
    request[USER_KEY] = user
    return user


def current_user(request: web.Request) -> User:
    """The authenticated caller of a USER or ADMIN route."""
    if USER_KEY not in request:
        raise RuntimeError("current_user() called on a route that is not authenticated")
    return request[USER_KEY]


def require_role(user: User, *roles: Role) -> None:
    """Raise a 403 ApiError unless `user` has one of `roles`."""
    if user.role not in roles:
        needed = " or ".join(role.value for role in roles)
        raise ApiError(403, "forbidden", detail=f"This action needs the {needed} role.")


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


async def apply_rate_limit(
    request: web.Request, key: str, limit_per_min: int, *, fail_open: bool = True
) -> None:
    """Count one request against `key`; a 429 ApiError with Retry-After when over the limit.

    The decision is kept on the request so the response carries RateLimit-* headers.
    When a shared limiter cannot decide (Redis down), the request goes ahead unlimited
    if `fail_open`, else the limiter's RateLimiterUnavailable propagates (a 503).
    """
    try:
        decision = await request.app[CONTEXT_KEY].rate_limiter.hit(key, limit_per_min)
    except RateLimiterUnavailable:
        if not fail_open:
            raise
        log.debug("rate limit %s not applied: the limiter is unavailable", key.partition(":")[0])
        return
    request[RATE_KEY] = RateState(limit_per_min, decision)
    if not decision.allowed:
        retry_after = max(1, math.ceil(decision.retry_after_s))
        raise ApiError(
            429,
            "rate_limited",
            detail=f"Too many requests; try again in {retry_after} s.",
            headers={hdrs.RETRY_AFTER: str(retry_after)},
        )


async def limit_login(request: web.Request, email: str) -> None:
    """Login attempts are limited per client address and email, before any password work.
    Without a working limiter logins are refused (503): guessing must stay bounded."""
    limit = request.app[CONTEXT_KEY].settings.auth.login_limit_per_min
    key = f"login:{client_address(request)}:{email.strip().lower()}"
    try:
        await apply_rate_limit(request, key, limit, fail_open=False)
    except RateLimiterUnavailable:
        raise ApiError(
            503,
            "login_unavailable",
            detail="Logging in is not possible while the shared rate limiter is unreachable; "
            "try again shortly.",
            headers={hdrs.RETRY_AFTER: "5"},
        ) from None


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    operation = request.app[REGISTRY_KEY].lookup(request)
    api_limit = request.app[CONTEXT_KEY].settings.auth.api_limit_per_min
    address_key = f"addr:{client_address(request)}"
    if operation is None or operation.access is Access.PUBLIC:
        if operation is None or operation.rate_limited:
            await apply_rate_limit(request, address_key, api_limit)
        return await handler(request)
    try:
        user = await authenticate(request)
    except ApiError:
        if operation.rate_limited:
            await apply_rate_limit(request, address_key, api_limit)
        raise
    if operation.rate_limited:
        await apply_rate_limit(request, f"user:{user.id}", api_limit)
    if operation.access is Access.ADMIN:
        require_role(user, Role.ADMIN)
    return await handler(request)
