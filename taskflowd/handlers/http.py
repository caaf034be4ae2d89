"""The `http` handler: one HTTP request per attempt, guarded against SSRF.

Payload: `{"url", "method"?, "headers"?, "body"?, "expectStatus"?}`. Guarantees:

- Only http/https URLs; every destination (the first and each redirect hop, at most
  `max_redirects`) must pass the AddressPolicy, checked on the address actually dialled,
  so DNS rebinding cannot reach an internal service. Refusal: `ssrf_blocked`, final.
- The whole exchange, redirects included, ends within `timeout_s` (`http_timeout`,
  retryable) and reads at most `max_response_bytes` of body (`response_too_large`, final).
- A status in `expectStatus` (default: any 2xx) gives `{"status", "headers", "body"}`,
  the body parsed as JSON when the response says it is JSON, else text. 408, 429 and 5xx
  fail retryably (`http_status`, honouring `Retry-After` up to `max_retry_after_s`);
  other statuses fail for good. Network failures fail retryably (`connection`).
- Every request (each redirect hop too) carries the attempt's identity, so a receiver
  can stay idempotent under at-least-once delivery: `X-Taskflow-Delivery-Id` (stable for
  one attempt of one execution, `<executionId>:<attempt>`), `X-Taskflow-Execution-Id`
  and `X-Taskflow-Attempt`. A payload cannot set these (its `headers` are refused).
- Cookies are never kept between requests, proxies from the environment are never used,
  and neither header values nor query strings are logged (they may hold secrets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import orjson
from aiohttp.resolver import DefaultResolver
from yarl import URL

import taskflowd
from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError
from taskflowd.handlers import parsing
from taskflowd.handlers.base import PAYLOAD_MODELS, HandlerSpec, JobContext, JobError
from taskflowd.handlers.http_rules import (
    ATTEMPT_HEADER,
    DELIVERY_ID_HEADER,
    EXECUTION_ID_HEADER,
    url_problem,
)
from taskflowd.handlers.ssrf import AddressPolicy, BlockedAddress, GuardedResolver, parse_ip

# Credentials meant for one origin must not follow a redirect to another (as browsers,
# curl and requests do).
_ORIGIN_BOUND_HEADERS = ("authorization", "proxy-authorization", "cookie")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_STATUSES = frozenset({408, 429})
_CHUNK_BYTES = 64 * 1024


def parse_retry_after(value: str | None, now: datetime, cap_s: float) -> float | None:
    """Seconds asked for by a `Retry-After` value (delta-seconds or HTTP-date), capped.

    None when absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap_s)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), cap_s)


def safe_url(url: URL) -> str:
    """`url` without credentials, query or fragment: fit for logs and error messages."""
    bare = url.with_query(None).with_fragment(None)
    # yarl refuses to touch the user part of a URL without a host (file:///...).
    return str(bare.with_user(None) if bare.host else bare)


class HttpHandler:
    """Owns one aiohttp session, created on first use inside the loop; `close()` ends it."""

    def __init__(
        self,
        *,
        policy: AddressPolicy | None = None,
        timeout_s: float = 30.0,
        max_response_bytes: int = 1024 * 1024,
        max_redirects: int = 5,
        max_retry_after_s: float = 3600.0,
    ) -> None:
        self._policy = policy or AddressPolicy()
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes
        self._max_redirects = max_redirects
        self._max_retry_after_s = max_retry_after_s
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        self._closed = False

    def spec(self) -> HandlerSpec:
        return HandlerSpec(
            "http",
            self.run,
            self.validate,
            admin_only=False,
            step_envelope=False,
            models=PAYLOAD_MODELS,
        )

    def validate(self, payload: JSON) -> list[FieldError]:
        """Shape errors, plus a literal IP host the policy refuses (names resolve later)."""
        from taskflowd.handlers.payloads import HttpPayload

        errors = parsing.check(HttpPayload, payload)
        if errors:
            return errors
        refusal = self._literal_refusal(URL(payload["url"]))
        return [] if refusal is None else [FieldError("payload.url", refusal)]

    async def close(self) -> None:
        """Close the session; later runs fail retryably with `handler_closed`."""
        self._closed = True
        session, resolver = self._session, self._resolver
        self._session = self._resolver = None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()

    async def run(self, payload: JSON, ctx: JobContext) -> JSON:
        from taskflowd.handlers.payloads import HttpPayload

        request = parsing.parse(HttpPayload, payload)
        session = self._session_or_fail()
        url = URL(request.url)
        headers, data = _encode_body(request.body, request.headers)
        headers.update(delivery_headers(ctx))
        expect = frozenset(request.expect_status) if request.expect_status else None
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(
                    session, url, request.method, headers, data, expect, ctx
                )
        except TimeoutError:
            raise JobError(
                f"{request.method} {safe_url(url)}: "
                f"no complete answer within {self._timeout_s:g} s",
                error_type="http_timeout",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                raise _blocked(str(exc.os_error)) from None
            raise JobError(f"{safe_url(url)}: {exc}", error_type="connection") from None
        except aiohttp.InvalidURL:
            # Not the exception's text: it repeats the URL, query string and all.
            raise JobError(
                f"{safe_url(url)}: the client refused the URL (or a redirect's)",
                error_type="invalid_url",
                retryable=False,
            ) from None
        except aiohttp.ClientError as exc:
            raise JobError(
                f"{safe_url(url)}: {type(exc).__name__}: {exc}", error_type="connection"
            ) from None

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._closed:
            raise JobError("the http handler is shut down", error_type="handler_closed")
        if self._session is None:
            # Built without an await between check and assignment, so concurrent first
            # runs cannot create two sessions.
            self._resolver = GuardedResolver(DefaultResolver(), self._policy)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": f"taskflowd/{taskflowd.__version__}"},
            )
        return self._session

    def _literal_refusal(self, url: URL) -> str | None:
        address = parse_ip(url.host or "")
        if address is None:
            return None
        reason = self._policy.refusal(address)
        return None if reason is None else f"destination {address} is refused ({reason})"

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        method: str,
        headers: dict[str, str],
        data: bytes | None,
        expect: frozenset[int] | None,
        ctx: JobContext,
    ) -> JSON:
        for _hop in range(self._max_redirects + 1):
            problem = url_problem(url) or self._literal_refusal(url)
            if problem is not None:
                raise _blocked(f"{safe_url(url)}: {problem}")
            ctx.logger.debug("http %s %s", method, safe_url(url))
            async with session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                explicitly_expected = expect is not None and resp.status in expect
                if resp.status in _REDIRECTS and location is not None and not explicitly_expected:
                    target = _redirect_target(url, location)
                    method, headers, data = _redirected_request(
                        resp.status,
                        method,
                        headers,
                        data,
                        same_origin=_origin(url) == _origin(target),
                    )
                    url = target
                    continue
                return await self._outcome(resp, method, url, expect)
        raise JobError(
            f"more than {self._max_redirects} redirects",
            error_type="too_many_redirects",
            retryable=False,
        )

    async def _outcome(
        self, resp: aiohttp.ClientResponse, method: str, url: URL, expect: frozenset[int] | None
    ) -> JSON:
        status = resp.status
        if (200 <= status < 300) if expect is None else (status in expect):
            raw = await self._read_capped(resp)
            content_type = resp.headers.get("Content-Type")
            return {
                "status": status,
                "headers": {} if content_type is None else {"content-type": content_type},
                "body": _decode(raw, resp),
            }
        wanted = "a 2xx status" if expect is None else f"one of {sorted(expect)}"
        message = f"{method} {safe_url(url)} answered {status} {resp.reason or ''}".rstrip()
        message += f", expected {wanted}"
        if status in _RETRYABLE_STATUSES or status >= 500:
            retry_after_s = parse_retry_after(
                resp.headers.get("Retry-After"), datetime.now(UTC), self._max_retry_after_s
            )
            raise JobError(message, error_type="http_status", retry_after_s=retry_after_s)
        raise JobError(message, error_type="http_status", retryable=False)

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self._max_response_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise _too_large(cap)
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            body += chunk
            if len(body) > cap:
                raise _too_large(cap)
        return bytes(body)


def delivery_headers(ctx: JobContext) -> dict[str, str]:
    """The headers that tell a receiver which attempt of which execution it sees."""
    return {
        DELIVERY_ID_HEADER: ctx.delivery_id,
        EXECUTION_ID_HEADER: ctx.execution_id,
        ATTEMPT_HEADER: str(ctx.attempt),
    }


def _blocked(message: str) -> JobError:
    return JobError(message, error_type="ssrf_blocked", retryable=False)


def _too_large(cap: int) -> JobError:
    return JobError(
        f"response body is larger than {cap} bytes",
        error_type="response_too_large",
        retryable=False,
    )


def _has_header(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)


def _encode_body(body: JSON, headers: Mapping[str, str]) -> tuple[dict[str, str], bytes | None]:
    """A string is sent as UTF-8 text, anything else but null as JSON."""
    out = dict(headers)
    if body is None:
        return out, None
    if isinstance(body, str):
        data, content_type = body.encode(), "text/plain; charset=utf-8"
    else:
        data, content_type = orjson.dumps(body), "application/json"
    if not _has_header(out, "content-type"):
        out["Content-Type"] = content_type
    return out, data


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port


def _redirect_target(current: URL, location: str) -> URL:
    try:
        return current.join(URL(location)).with_fragment(None)
    except (ValueError, TypeError):
        raise JobError(
            "redirect with an unreadable Location header",
            error_type="http_redirect",
            retryable=False,
        ) from None


def _redirected_request(
    status: int, method: str, headers: dict[str, str], data: bytes | None, *, same_origin: bool
) -> tuple[str, dict[str, str], bytes | None]:
    """Method, headers and body of the next hop, following what browsers do."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, data = "GET", None
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if not same_origin:
        headers = {k: v for k, v in headers.items() if k.lower() not in _ORIGIN_BOUND_HEADERS}
    return method, headers, data


def _decode(raw: bytes, resp: aiohttp.ClientResponse) -> JSON:
    content_type = resp.content_type
    if content_type == "application/json" or content_type.endswith("+json"):
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # a server that mislabels its body still gets its text recorded
    try:
        return raw.decode(resp.charset or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")
