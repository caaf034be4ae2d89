"""Signing in and out, the profile (password change) and user administration."""

from __future__ import annotations

import hmac
import math
from typing import Any

from aiohttp import web

from taskflowd.auth.ratelimit import RateLimiterUnavailable
from taskflowd.auth.service import InvalidCredentials, NewUser, UserChanges
from taskflowd.dashboard.context import (
    PREFIX,
    SESSION_KEY,
    clear_cookie,
    dashboard,
    is_admin,
    redirect,
    render,
    safe_next,
    set_cookie,
    start_session,
    viewer,
)
from taskflowd.dashboard.sessions import LOGIN_COOKIE, SESSION_COOKIE
from taskflowd.domain.enums import Role
from taskflowd.domain.errors import Conflict, Forbidden, ValidationFailed

LOGIN_TOKEN_TTL_S = 3600
USERS_PAGE_SIZE = 100
MAX_FIELD_CHARS = 320


def _text(form: Any, name: str, limit: int = MAX_FIELD_CHARS) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def _login_page(
    request: web.Request, email: str = "", error: str | None = None, status: int = 200
) -> web.Response:
    token = dashboard(request).sessions.new_login_token()
    response = render(
        request,
        "login.html",
        {
            "email": email,
            "error": error,
            "login_token": token,
            "next": safe_next(request.query.get("next")),
        },
        status=status,
    )
    set_cookie(request, response, LOGIN_COOKIE, token, LOGIN_TOKEN_TTL_S)
    return response


async def login_page(request: web.Request) -> web.Response:
    if SESSION_KEY in request:
        return redirect(request, safe_next(request.query.get("next")))
    return _login_page(request)


async def login(request: web.Request) -> web.Response:
    """Check the login form's double-submit token, the rate limit (shared with the API's
    login: same key), then the password."""
    ctx = dashboard(request)
    form = await request.post()
    email = _text(form, "email")
    password = _text(form, "password", 1024)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = _text(form, "login_token", 256)
    if not expected or not hmac.compare_digest(expected, given):
        return _login_page(request, email, "The sign-in form expired; please try again.", 400)
    key = f"login:{request.remote or 'unknown'}:{email.strip().lower()}"
    try:
        decision = await ctx.rate_limiter.hit(key, ctx.settings.auth.login_limit_per_min)
    except RateLimiterUnavailable:  # fail closed, as the API's login does
        return _login_page(request, email, "Signing in is not possible right now; retry soon.", 503)
    if not decision.allowed:
        wait_s = max(1, math.ceil(decision.retry_after_s))
        return _login_page(request, email, f"Too many attempts; try again in {wait_s} s.", 429)
    try:
        pair = await ctx.auth.login(email, password)
    except InvalidCredentials:
        return _login_page(request, email, "Wrong email or password.", 401)
    # The dashboard keeps its own session; the API session login opened is not needed.
    user = (await ctx.auth.authenticate(pair.access_token)).user
    await ctx.auth.logout(pair.refresh_token, record=False)
    response = redirect(request, safe_next(_text(form, "next", 2048)))
    start_session(request, response, user)
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


async def logout(request: web.Request) -> web.Response:
    ctx = dashboard(request)
    await ctx.auth.signed_out(viewer(request))  # recorded first: no sign-out goes unrecorded
    ctx.sessions.revoke(request[SESSION_KEY])
    response = redirect(request, f"{PREFIX}/login", "You are signed out.")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


async def profile_page(request: web.Request) -> web.Response:
    return render(request, "profile.html", {"errors": {}}, section="profile")


async def change_password(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), viewer(request)
    form = await request.post()
    current, new = _text(form, "currentPassword", 1024), _text(form, "newPassword", 1024)
    errors: dict[str, str] = {}
    if new != _text(form, "confirmPassword", 1024):
        errors["confirmPassword"] = "does not match the new password"
    else:
        try:
            await ctx.auth.change_password(user, current, new)
        except ValidationFailed as exc:
            errors = {e.field: e.message for e in exc.errors}
    if errors:
        return render(request, "profile.html", {"errors": errors}, status=422, section="profile")
    # Changing the password ended every session, this one included: start a new one.
    response = redirect(request, f"{PREFIX}/profile", "Password changed; other sessions ended.")
    start_session(request, response, await ctx.auth.get_user(user.id))
    return response


def _require_admin(request: web.Request) -> None:
    if not is_admin(viewer(request)):
        raise Forbidden("Only administrators can manage users.")


async def users_page(
    request: web.Request,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    _require_admin(request)
    page = await dashboard(request).auth.list_users(USERS_PAGE_SIZE, None)
    return render(
        request,
        "users.html",
        {
            "users": page.items,
            "more_users": page.next_cursor is not None,
            "roles": list(Role),
            "form": form or {"email": "", "firstName": "", "lastName": "", "role": "USER"},
            "errors": errors or {},
        },
        status=status,
        section="users",
    )


async def create_user(request: web.Request) -> web.Response:
    _require_admin(request)
    data = await request.post()
    form = {n: _text(data, n) for n in ("email", "firstName", "lastName", "role")}
    errors: dict[str, str] = {}
    role = Role(form["role"]) if form["role"] in Role.__members__ else None
    if role is None:
        errors["role"] = "choose USER or ADMIN"
    else:
        new = NewUser(
            email=form["email"],
            password=_text(data, "password", 1024),
            first_name=form["firstName"],
            last_name=form["lastName"],
            role=role,
        )
        try:
            created = await dashboard(request).auth.create_user(new, viewer(request))
        except ValidationFailed as exc:
            errors = {e.field: e.message for e in exc.errors}
        except Conflict as exc:
            errors = {"email": str(exc)}
        else:
            return redirect(request, f"{PREFIX}/users", f"Created {created.email}.")
    return await users_page(request, form, errors, status=422)


async def update_user(request: web.Request) -> web.Response:
    _require_admin(request)
    data = await request.post()
    role_text, active_text = _text(data, "role"), _text(data, "isActive")
    changes = UserChanges(
        role=Role(role_text) if role_text in Role.__members__ else None,
        is_active={"true": True, "false": False}.get(active_text),
    )
    here = f"{PREFIX}/users"
    try:
        user = await dashboard(request).auth.update_user(
            viewer(request), request.match_info["id"], changes
        )
    except (Forbidden, ValidationFailed) as exc:
        return redirect(request, here, str(exc), error=True)
    state = "active" if user.is_active else "deactivated"
    return redirect(request, here, f"{user.email} is now {user.role.value}, {state}.")
