"""What the API needs from the rest of the daemon, and the typed keys it keeps state under."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from aiohttp import web

from taskflowd.auth.principals import Principal
from taskflowd.auth.ratelimit import Decision, RateLimiter
from taskflowd.auth.service import AuthService
from taskflowd.config import Settings
from taskflowd.domain.entities import User
from taskflowd.services.quotas import QuotaBook
from taskflowd.store.base import Store

if TYPE_CHECKING:
    from taskflowd.api.openapi import ApiRegistry

Report = Callable[[web.Request, int, float, web.StreamResponse | None], None]
"""Told of every answered request: (request, status, seconds, response or None)."""
RouteInstaller = Callable[["ApiRegistry"], None]
"""Registers a resource's routes (and their OpenAPI entries) with `ApiRegistry.add`."""


@dataclass(frozen=True, slots=True)
class ApiContext:
    """Built once by the composition root; `extra_routes` mounts the engine's resources."""

    settings: Settings
    store: Store
    auth: AuthService
    rate_limiter: RateLimiter
    extra_routes: tuple[RouteInstaller, ...] = ()
    reports: tuple[Report, ...] = ()
    """Told of every request after the access log (e.g. metrics)."""
    accounts: bool = True
    """Serve the auth and users routes; False on a node without the `api` role."""
    quotas: QuotaBook | None = None
    """The node's quota book, shared with its services; None: the app makes its own."""


class RateState(NamedTuple):
    """The rate-limit decision that applies to this request, for the RateLimit-* headers
    (a named tuple: one is made per rate-limited request)."""

    limit: int
    decision: Decision


CONTEXT_KEY = web.AppKey("taskflowd.api.context", ApiContext)
USER_KEY = web.RequestKey("taskflowd.user", User)
PRINCIPAL_KEY = web.RequestKey("taskflowd.principal", Principal)
REQUEST_ID_KEY = web.RequestKey("taskflowd.request_id", str)
RATE_KEY: web.RequestKey[RateState | None] = web.RequestKey("taskflowd.rate")
"""None until a rate limit decided (the front sets it first, for the headers' hook)."""
