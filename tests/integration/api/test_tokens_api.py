"""Forged, expired and otherwise wrong access tokens are refused with 401 + a challenge."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from tests.integration.api.conftest import SECRET, Client, Session, assert_problem, sign_up

ME = "/api/v1/auth/me"


def claims_for(session: Session, **changes: Any) -> dict[str, Any]:
    """Valid access-token claims for `session`; a timedelta change is relative to now."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": "taskflowd",
        "aud": "taskflowd-api",
        "sub": session.user["id"],
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "jti": "j-1",
        "typ": "access",
        "ver": 0,
        "role": "USER",
    }
    claims.update({k: now + v if isinstance(v, timedelta) else v for k, v in changes.items()})
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def assert_refused(client: Client, token: str) -> None:
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="taskflowd", error="invalid_token"'
    assert_problem(await response.json(), 401, "invalid_token")


async def test_a_well_formed_forgery_with_the_right_secret_is_accepted(client: Client) -> None:
    """Control for the tests below: the hand-made claims are otherwise valid."""
    session = await sign_up(client, "control@example.com")
    response = await client.get(
        ME, headers={"Authorization": f"Bearer {sign(claims_for(session))}"}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    "change",
    [
        {"exp": timedelta(minutes=-1)},
        {"nbf": timedelta(minutes=2)},
        {"typ": "refresh"},
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"ver": 1},
        {"ver": "0"},
        {"role": "ROOT"},
        {"sub": "no-such-user"},
    ],
    ids=["expired", "not-yet-valid", "typ", "aud", "iss", "ver", "ver-type", "role", "sub"],
)
async def test_wrong_claims_are_refused(client: Client, change: dict[str, Any]) -> None:
    session = await sign_up(client, "claims@example.com")
    await assert_refused(client, sign(claims_for(session, **change)))


@pytest.mark.parametrize(
    "missing", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "typ", "ver", "role"]
)
async def test_missing_claims_are_refused(client: Client, missing: str) -> None:
    session = await sign_up(client, "missing@example.com")
    await assert_refused(client, sign(claims_for(session, **{missing: None})))


async def test_alg_none_is_refused(client: Client) -> None:
    session = await sign_up(client, "none@example.com")
    await assert_refused(client, unsigned(claims_for(session)))


async def test_wrong_signature_is_refused(client: Client) -> None:
    session = await sign_up(client, "sig@example.com")
    await assert_refused(
        client, sign(claims_for(session), secret="another-secret-of-32-bytes-or-more!")
    )
    head, body, signature = session.access.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    await assert_refused(client, f"{head}.{body}.{flipped}")


async def test_other_algorithms_are_refused(client: Client) -> None:
    session = await sign_up(client, "hs512@example.com")
    await assert_refused(
        client, jwt.encode(claims_for(session), SECRET + SECRET, algorithm="HS512")
    )


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 5000])
async def test_garbage_is_refused(client: Client, token: str) -> None:
    await assert_refused(client, token)


async def test_refresh_token_is_not_an_access_token(client: Client) -> None:
    session = await sign_up(client, "swap@example.com")
    await assert_refused(client, session.refresh)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
async def test_other_schemes_are_refused(client: Client, header: str) -> None:
    response = await client.get(ME, headers={"Authorization": header})
    assert response.status == 401
    assert "invalid_token" in response.headers["WWW-Authenticate"]


async def test_tokens_outside_the_header_are_ignored(client: Client) -> None:
    session = await sign_up(client, "cookie@example.com")
    for response in (
        await client.get(f"{ME}?access_token={session.access}"),
        await client.get(ME, cookies={"access_token": session.access}),
    ):
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="taskflowd"'
        assert_problem(await response.json(), 401, "unauthorized")
