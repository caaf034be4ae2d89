"""/api/v1/auth: register, log in, refresh, log out, the caller's account and password."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.openapi import Access, ApiRegistry, Operation
from taskflowd.api.responses import etag_response, json_response, no_content
from taskflowd.api.schemas import (
    ChangePasswordRequest,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPairOut,
    UserOut,
    token_pair_out,
    user_out,
)
from taskflowd.api.security import current_user, limit_login
from taskflowd.api.validation import parse_body
from taskflowd.auth.service import AuthService, NewUser

PREFIX = "/api/v1/auth"


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


def install(api: ApiRegistry) -> None:
    public, user = Access.PUBLIC, Access.USER
    for operation in (
        Operation(
            "POST",
            f"{PREFIX}/register",
            register,
            "Create an account (role USER) unless registration is disabled",
            "auth",
            public,
            status=201,
            body=RegisterRequest,
            response=UserOut,
            problems=(403, 409),
        ),
        Operation(
            "POST",
            f"{PREFIX}/login",
            login,
            "Exchange email and password for an access and a refresh token",
            "auth",
            public,
            body=LoginRequest,
            response=TokenPairOut,
            problems=(401,),
        ),
        Operation(
            "POST",
            f"{PREFIX}/refresh",
            refresh,
            "Spend a refresh token for a new pair; reusing a spent one revokes its family",
            "auth",
            public,
            body=RefreshRequest,
            response=TokenPairOut,
            problems=(401,),
        ),
        Operation(
            "POST",
            f"{PREFIX}/logout",
            logout,
            "Revoke the session (token family) of a refresh token",
            "auth",
            public,
            status=204,
            body=RefreshRequest,
        ),
        Operation(
            "GET",
            f"{PREFIX}/me",
            me,
            "The signed-in user",
            "auth",
            user,
            response=UserOut,
            problems=(404,),
            etag=True,
        ),
        Operation(
            "POST",
            f"{PREFIX}/password",
            change_password,
            "Change your password; every session of yours ends",
            "auth",
            user,
            status=204,
            body=ChangePasswordRequest,
            problems=(404,),
        ),
    ):
        api.add(operation)
