"""One HTTP session to a taskflowd server, with authentication and retries.

Every request goes through `Transport.call`: it adds the bearer credential, encodes the
body, and retries what is safe to retry with capped exponential backoff (jittered):

- 429 and 503, honouring `Retry-After` (a wait longer than `max_retry_after_s` is not
  waited for: the error is raised at once);
- a connection that could not be opened (nothing was sent);
- a connection that broke or timed out after the request went out, only when repeating
  the request cannot do it twice: GET, PUT and DELETE, or a request that carries an
  `Idempotency-Key` (the same key on every attempt, so the server answers a repeat with
  the first response).

Anything else that is not the expected status raises `ApiError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from taskflowd import __version__
from taskflowd.client.errors import ApiError, ProtocolError, TaskflowError, TransportError

log = logging.getLogger("taskflowd.client")

IDEMPOTENCY_HEADER = "Idempotency-Key"
ORG_HEADER = "X-Taskflow-Org"
_RETRY_STATUSES = frozenset({429, 503})
_REPEATABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_JSON_TYPES = ("application/json", "application/problem+json")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is tried: at most `max_attempts` in all;
    the n-th retry waits a random time between half and all of
    `min(max_backoff_s, backoff_s · 2^(n-1))`, or what `Retry-After` says."""

    max_attempts: int = 5
    backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("waiting times cannot be negative")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2.0 ** (retry - 1))
        return ceiling / 2 + random.random() * ceiling / 2


NO_RETRIES = RetryPolicy(max_attempts=1)


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _query(params: Mapping[str, object] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v is not None}


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    query: dict[str, str] | None
    data: bytes | None
    headers: dict[str, str]
    repeatable: bool
    """Sending it twice does no harm (an idempotent method, or an Idempotency-Key)."""
    attempts: int


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    content_type: str
    reason: str
    retry_after_s: float | None


class Transport:
    """The connection pool (one `aiohttp.ClientSession`, keep-alive) and the request loop.

    The session opens on the first request, in the event loop that makes it; the
    transport belongs to that loop from then on.
    """

    def __init__(
        self,
        base_url: str,
        *,
        credential: str | None,
        timeout_s: float,
        retry: RetryPolicy,
        connections: int,
        org: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the server URL must start with http:// or https://: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.credential = credential
        self.org = org
        self.retry = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TaskflowError("this client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=self._timeout,
                headers={
                    "User-Agent": f"taskflowd-client/{__version__}",
                    "Accept": "application/json",
                },
            )
        return self._session

    async def close(self) -> None:
        """Close the pooled connections; the transport cannot be used afterwards."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        ok: Collection[int] = (200,),
        retry: bool = True,
        token: str | None = None,
    ) -> Any:
        """Send one logical request (retried per the policy) and return its decoded JSON
        body (None for an empty one). `token` replaces the client's credential."""
        answer = await self._send(method, path, params, body, idempotency_key, ok, retry, token)
        return _json(answer)

    async def text(self, path: str, *, token: str | None = None) -> str:
        """GET `path` (retried per the policy) and return its body as text."""
        answer = await self._send("GET", path, None, None, None, (200,), True, token)
        return answer.body.decode("utf-8", errors="replace")

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None,
        body: Any,
        idempotency_key: str | None,
        ok: Collection[int],
        retry: bool,
        token: str | None,
    ) -> _Answer:
        headers: dict[str, str] = {}
        credential = token if token is not None else self.credential
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        if self.org:
            headers[ORG_HEADER] = self.org
        data: bytes | None = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        request = _Request(
            method,
            self.base_url + path,
            _query(params),
            data,
            headers,
            repeatable=method in _REPEATABLE_METHODS or idempotency_key is not None,
            attempts=self.retry.max_attempts if retry else 1,
        )
        attempt = 1
        while True:
            answer = await self._attempt(request, attempt)
            if answer is None:
                attempt += 1
                continue
            if answer.status in ok:
                return answer
            error = ApiError.from_problem(
                answer.status, _error_body(answer), answer.reason, answer.retry_after_s
            )
            wait_s = self._retry_wait(answer, attempt, request.attempts)
            if wait_s is None:
                raise error
            log.info(
                "%s %s answered %s; attempt %d of %d in %.2f s",
                method, path, error.code, attempt + 1, request.attempts, wait_s,
            )  # fmt: skip
            await asyncio.sleep(wait_s)
            attempt += 1

    def _retry_wait(self, answer: _Answer, attempt: int, attempts: int) -> float | None:
        """How long to wait before repeating a request that got `answer`; None: don't."""
        if answer.status not in _RETRY_STATUSES or attempt >= attempts:
            return None
        if answer.retry_after_s is None:
            return self.retry.backoff(attempt)
        if answer.retry_after_s > self.retry.max_retry_after_s:
            return None
        return answer.retry_after_s

    async def _attempt(self, request: _Request, attempt: int) -> _Answer | None:
        """One try: the answer, or None after a connection failure worth retrying (having
        waited the backoff); raises TransportError when it is not worth it."""
        session = self._open()
        method, url = request.method, request.url
        try:
            async with session.request(
                method, url, params=request.query, data=request.data, headers=request.headers
            ) as response:
                raw = await response.read()
                return _Answer(
                    response.status,
                    raw,
                    response.content_type,
                    response.reason or "",
                    retry_after_s(response.headers.get("Retry-After")),
                )
        except aiohttp.ClientConnectorError as exc:
            failure: Exception = exc
            sent = False
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            failure = exc
            sent = True
        except aiohttp.ClientError as exc:
            raise TransportError(f"{method} {url}: {exc}") from exc
        reason = _describe(failure)
        if attempt >= request.attempts or (sent and not request.repeatable):
            tries = f" (after {attempt} attempts)" if attempt > 1 else ""
            raise TransportError(f"{method} {url}: {reason}{tries}") from failure
        wait_s = self.retry.backoff(attempt)
        log.info(
            "%s %s failed (%s); attempt %d of %d in %.2f s",
            method, url, reason, attempt + 1, request.attempts, wait_s,
        )  # fmt: skip
        await asyncio.sleep(wait_s)
        return None


def _describe(exc: Exception) -> str:
    """A short reason for a failed attempt, e.g. "Connection refused"."""
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _json(answer: _Answer) -> Any:
    if not answer.body:
        return None
    if answer.content_type not in _JSON_TYPES:
        raise ProtocolError(f"expected JSON, got {answer.content_type or 'no content type'}")
    try:
        return orjson.loads(answer.body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"the response is not valid JSON: {exc}") from None


def _error_body(answer: _Answer) -> Any:
    if answer.content_type not in _JSON_TYPES:
        return None
    try:
        return orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return None
