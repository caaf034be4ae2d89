"""/api/v1/auth: register, log in, refresh, log out, the caller's account and password.

The handlers; the routes are declared in `taskflowd.api.routes.auth`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.responses import etag_response, json_response, no_content
from taskflowd.api.schemas import (
    ChangePasswordRequest,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    token_pair_out,
    user_out,
)
from taskflowd.api.security import current_user, limit_login
from taskflowd.api.validation import parse_body
from taskflowd.auth.service import AuthService, NewUser


def _auth(request: web.Request) -> AuthService:
    return request.app[CONTEXT_KEY].auth


async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterRequest)
    user = await _auth(request).register(
        NewUser(body.email, body.password, body.first_name, body.last_name)
    )
    return json_response(user_out(user), status=201)


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginRequest)
    await limit_login(request, body.email)
    pair = await _auth(request).login(body.email, body.password)
    return json_response(token_pair_out(pair))


async def refresh(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshRequest)
    pair = await _auth(request).refresh(body.refresh_token)
    return json_response(token_pair_out(pair))


async def logout(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshRequest)
    await _auth(request).logout(body.refresh_token)
    return no_content()


async def me(request: web.Request) -> web.Response:
    user = await _auth(request).me(current_user(request))
    return etag_response(request, user_out(user))


async def change_password(request: web.Request) -> web.Response:
    body = await parse_body(request, ChangePasswordRequest)
    await _auth(request).change_password(
        current_user(request), body.current_password, body.new_password
    )
    return no_content()
