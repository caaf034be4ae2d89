"""The dashboard's middleware and response headers.

Every dashboard request: query and form text the database could not store (a NUL
character, `taskflowd.domain.text`) refused with a 422 page naming the field, same-origin
check for state-changing methods, session cookie → live user (active, same
`token_version`), CSRF token on everything that is not a GET, and failures turned into
HTML pages rather than the API's problem documents.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from taskflowd.api.context import REQUEST_ID_KEY
from taskflowd.dashboard.acting import ACTING_KEY, ORG_COOKIE, resolve
from taskflowd.dashboard.context import (
    CSRF_FIELD,
    CSRF_HEADER,
    FLASH_KEY,
    PAGE_EXTRAS_KEY,
    PREFIX,
    SESSION_KEY,
    VIEWER_KEY,
    clear_cookie,
    dashboard,
    redirect,
    render,
    set_cookie,
)
from taskflowd.dashboard.sessions import FLASH_COOKIE, IDLE_TTL_S, SESSION_COOKIE
from taskflowd.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from taskflowd.domain.text import NUL, NUL_MESSAGE
from taskflowd.store.errors import StoreUnavailable

log = logging.getLogger("taskflowd.dashboard")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
PUBLIC_PATHS = frozenset({f"{PREFIX}/login"})
SAFE_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})
LIVE_HEADER = "X-Taskflow-Live"
"""Sent by a page that reads itself again to swap in live parts (live.js): such a read
leaves the flash message to the page the browser shows next."""
_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Cannot be stored",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def origin_of(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def same_origin(request: web.Request) -> bool:
    """True unless the browser says the request comes from another origin."""
    origin = request.headers.get(hdrs.ORIGIN)
    return origin is None or origin == origin_of(request)


def error_page(request: web.Request, status: int, detail: str) -> web.Response:
    context = {
        "status": status,
        "title": _TITLES.get(status, "Error"),
        "detail": detail,
        "request_id": request.get(REQUEST_ID_KEY, ""),
    }
    return render(request, "error.html", context, status=status)


@web.middleware
async def dashboard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await _guarded(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(request, exc.status, exc.reason)
    except NotFound:
        return error_page(request, 404, "It does not exist, was deleted, or is not yours.")
    except Forbidden as exc:
        return error_page(request, 403, str(exc))
    except Conflict as exc:
        return error_page(request, 409, str(exc))
    except ValidationFailed as exc:
        return error_page(request, 400, str(exc))
    except StoreUnavailable:
        return error_page(request, 503, "The database does not answer; try again shortly.")
    except Exception:
        log.exception("unhandled error in dashboard %s %s", request.method, request.path)
        return error_page(request, 500, "Quote the request id below when reporting this.")


async def _text_problem(request: web.Request, unsafe: bool) -> str | None:
    """The first query parameter or form field holding a NUL, as a message; else None."""
    fields = list(request.query.items())
    if unsafe and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        fields += [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
    for name, value in fields:
        if NUL in name or NUL in value:
            shown = name.replace(NUL, "\\0")
            return f"The field {shown} {NUL_MESSAGE}: it could not be stored."
    return None


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    unsafe = request.method not in SAFE_METHODS
    if unsafe and not same_origin(request):
        return error_page(request, 403, "Requests from other sites are refused.")
    problem = await _text_problem(request, unsafe)
    if problem is not None:
        return error_page(request, 422, problem)
    flash_cookie = request.cookies.get(FLASH_COOKIE)
    sessions = dashboard(request).sessions
    if flash_cookie and not unsafe and LIVE_HEADER not in request.headers:
        flash = sessions.read_flash(flash_cookie)
        if flash is not None:
            request[FLASH_KEY] = flash
    signed_in = await _load_user(request)
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    if not signed_in:
        return _to_login(request)
    if unsafe and not await _csrf_ok(request):
        return error_page(request, 403, "The form had expired. Reload the page and try again.")
    await _act(request)
    response = await handler(request)
    session = request[SESSION_KEY]
    if session.due_for_renewal(sessions.now()) and not response.prepared:
        value = sessions.issue(session.user_id, session.token_version, session)
        set_cookie(request, response, SESSION_COOKIE, value, IDLE_TTL_S)
    return response


async def _load_user(request: web.Request) -> bool:
    """Put the session and its user on the request when both are still valid."""
    ctx = dashboard(request)
    session = ctx.sessions.verify(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return False
    try:
        user = await ctx.auth.get_user(session.user_id)
    except NotFound:
        return False
    if not user.is_active or user.token_version != session.token_version:
        return False
    request[SESSION_KEY] = session
    request[VIEWER_KEY] = user
    return True


async def _act(request: web.Request) -> None:
    """Resolve the org the page acts in, and give every page the switcher's context."""
    found = await resolve(dashboard(request), request[VIEWER_KEY], request.cookies.get(ORG_COOKIE))
    request[ACTING_KEY] = found
    request[PAGE_EXTRAS_KEY] = {
        "acting": found,
        "can_write": found.can_write,
        "can_manage": found.can_manage,
    }


def _to_login(request: web.Request) -> web.Response:
    if request.method in SAFE_METHODS:
        target = request.path_qs if request.path != f"{PREFIX}/" else ""
        location = f"{PREFIX}/login" + (f"?next={quote(target, safe='')}" if target else "")
        response = redirect(request, location)
    else:
        response = redirect(
            request, f"{PREFIX}/login", "Your session has ended; sign in again.", error=True
        )
    if SESSION_COOKIE in request.cookies:
        clear_cookie(request, response, SESSION_COOKIE)
    return response


async def _csrf_ok(request: web.Request) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return dashboard(request).sessions.check_csrf(request[SESSION_KEY], given)


async def dashboard_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers of every dashboard page; pages are private, never cached."""
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    # Not "no-referrer": with it, browsers send `Origin: null` on form posts, and the
    # same-origin check needs the real origin. Other sites still learn nothing.
    headers["Referrer-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    headers.setdefault(hdrs.CACHE_CONTROL, "no-store")


def static_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Versioned static files are immutable; unversioned ones are revalidated (the
    headers of `/static/`: see `taskflowd.api.middleware.PATH_HEADERS_KEY`)."""
    if "v" in request.query and response.status == 200:
        response.headers[hdrs.CACHE_CONTROL] = "public, max-age=31536000, immutable"
    else:
        response.headers[hdrs.CACHE_CONTROL] = "no-cache"
