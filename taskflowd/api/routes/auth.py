"""/api/v1/auth: register, log in, refresh, log out, the caller's account and password.

Declared here; the handlers, in `taskflowd.api.views.auth`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from taskflowd.api.openapi import Access, ApiRegistry, Operation

VIEWS = "taskflowd.api.views.auth"
PREFIX = "/api/v1/auth"


def install(api: ApiRegistry) -> None:
    public, user = Access.PUBLIC, Access.USER
    for operation in (
        Operation(
            "POST",
            f"{PREFIX}/register",
            "register",
            "Create an account (role USER) unless registration is disabled",
            "auth",
            public,
            status=201,
            body="schemas.RegisterRequest",
            response="schemas.UserOut",
            problems=(403, 409),
        ),
        Operation(
            "POST",
            f"{PREFIX}/login",
            "login",
            "Exchange email and password for an access and a refresh token",
            "auth",
            public,
            body="schemas.LoginRequest",
            response="schemas.TokenPairOut",
            problems=(401,),
        ),
        Operation(
            "POST",
            f"{PREFIX}/refresh",
            "refresh",
            "Spend a refresh token for a new pair; reusing a spent one revokes its family",
            "auth",
            public,
            body="schemas.RefreshRequest",
            response="schemas.TokenPairOut",
            problems=(401,),
        ),
        Operation(
            "POST",
            f"{PREFIX}/logout",
            "logout",
            "Revoke the session (token family) of a refresh token",
            "auth",
            public,
            status=204,
            body="schemas.RefreshRequest",
        ),
        Operation(
            "GET",
            f"{PREFIX}/me",
            "me",
            "The signed-in user",
            "auth",
            user,
            response="schemas.UserOut",
            problems=(404,),
            etag=True,
        ),
        Operation(
            "POST",
            f"{PREFIX}/password",
            "change_password",
            "Change your password; every session of yours ends",
            "auth",
            user,
            status=204,
            body="schemas.ChangePasswordRequest",
            problems=(404,),
        ),
    ):
        api.add(operation, VIEWS)
