"""Who is calling and how often: bearer authentication, roles and rate limits.

`taskflowd.api.gate` enforces with these what each registered `Operation` declares:
public routes are limited per client address; USER and ADMIN routes authenticate the
bearer credential (an access token or an API key, from the Authorization header only),
then bound the user's requests in flight on this node and their rate, then check the
role. Handlers read the caller with `current_user(request)` (and `current_principal` for
how it signed in).

The defaults let a program send requests back to back, or in batches, without ever
being throttled (one connection cannot reach the per-user rate), while a client that
opens many connections at once meets the in-flight bound (429).
"""

from __future__ import annotations

import logging
import math

from aiohttp import hdrs, web

from taskflowd.api.context import CONTEXT_KEY, PRINCIPAL_KEY, RATE_KEY, USER_KEY, RateState
from taskflowd.api.problems import ApiError
from taskflowd.auth.principals import Principal
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


async def authenticate(request: web.Request) -> Principal:
    """The caller, from the bearer credential; raises a 401 ApiError when there is none."""
    if PRINCIPAL_KEY in request:
        return request[PRINCIPAL_KEY]
    return await bearer_principal(request)


async def bearer_principal(request: web.Request) -> Principal:
    """`authenticate` for the gate, the first to ask: the credential is checked, not
    looked for on the request first."""
    token = bearer_token(request)
    if token is None:
        raise unauthorized(
            "This endpoint needs a bearer access token or API key.", token_given=False
        )
    try:
        principal = await request.app[CONTEXT_KEY].auth.authenticate(token)
    except InvalidToken:
        raise unauthorized(
            "The access token or API key is invalid, expired or revoked.", token_given=True
        ) from None
    request[PRINCIPAL_KEY] = principal
    request[USER_KEY] = principal.user
    return principal


def current_user(request: web.Request) -> User:
    """The authenticated caller of a USER or ADMIN route."""
    if USER_KEY not in request:
        raise RuntimeError("current_user() called on a route that is not authenticated")
    return request[USER_KEY]


def current_principal(request: web.Request) -> Principal:
    """The authenticated caller with the credential it used."""
    if PRINCIPAL_KEY not in request:
        raise RuntimeError("current_principal() called on a route that is not authenticated")
    return request[PRINCIPAL_KEY]


class InFlight:
    """Requests being answered now, per user, on this node."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def enter(self, user_id: str) -> int:
        """Count one more request of `user_id`; returns how many are in flight now."""
        count = self._counts.get(user_id, 0) + 1
        self._counts[user_id] = count
        return count

    def leave(self, user_id: str) -> None:
        count = self._counts[user_id] - 1
        if count:
            self._counts[user_id] = count
        else:
            del self._counts[user_id]


IN_FLIGHT_KEY = web.AppKey("taskflowd.in_flight", InFlight)


def require_role(user: User, *roles: Role) -> None:
    """Raise a 403 ApiError unless `user` has one of `roles`."""
    if user.role not in roles:
        needed = " or ".join(role.value for role in roles)
        raise ApiError(403, "forbidden", detail=f"This action needs the {needed} role.")


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


async def apply_rate_limit(
    request: web.Request,
    key: str,
    limit_per_min: int,
    *,
    fail_open: bool = True,
    cost: int = 1,
    code: str = "rate_limited",
    what: str = "requests",
) -> None:
    """Count one request against `key`; a 429 ApiError with Retry-After when over the limit.

    The decision is kept on the request so the response carries RateLimit-* headers.
    When a shared limiter cannot decide (Redis down), the request goes ahead unlimited
    if `fail_open`, else the limiter's RateLimiterUnavailable propagates (a 503).
    """
    try:
        decision = await request.app[CONTEXT_KEY].rate_limiter.hit(key, limit_per_min, cost)
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
            code,
            detail=f"Too many {what} (at most {limit_per_min} per minute); "
            f"try again in {retry_after} s.",
            headers={hdrs.RETRY_AFTER: str(retry_after)},
        )


async def limit_jobs(request: web.Request, count: int) -> None:
    """Charge `count` created jobs to the caller's job-creation limit (429 beyond)."""
    limit = request.app[CONTEXT_KEY].settings.auth.job_limit_per_min
    if count > limit:
        raise ApiError(
            429,
            "job_limit_exceeded",
            detail=f"One request may create at most {limit} jobs (auth.job_limit_per_min).",
            headers={hdrs.RETRY_AFTER: "60"},
        )
    user = current_user(request)
    await apply_rate_limit(
        request,
        f"jobs:{user.id}",
        limit,
        cost=count,
        code="job_rate_limited",
        what="jobs created",
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
