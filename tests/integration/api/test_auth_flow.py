"""Registration, login, refresh rotation, logout and password change through the API."""

from __future__ import annotations

import dataclasses

import pytest

from taskflowd.auth.tokens import hash_refresh_token
from taskflowd.store import SqlStore
from tests.integration.api.conftest import (
    PASSWORD,
    Client,
    MakeClient,
    assert_problem,
    bearer,
    login,
    register,
    sign_up,
)

NEW_PASSWORD = "a brand new passphrase"


async def test_register_login_me(client: Client) -> None:
    user = await register(client, "Ada@Example.COM")
    assert user["email"] == "ada@example.com"
    assert user["role"] == "USER" and user["isActive"] is True
    assert set(user) == {
        "id",
        "email",
        "firstName",
        "lastName",
        "role",
        "isActive",
        "createdAt",
        "updatedAt",
    }
    assert user["createdAt"].endswith("+00:00")
    tokens = await login(client, "ada@example.com")
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] == 900
    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["accessToken"]))
    assert me.status == 200
    assert await me.json() == user
    assert me.headers["Cache-Control"] == "no-store"


async def test_me_supports_etags(client: Client) -> None:
    session = await sign_up(client, "etag@example.com")
    first = await client.get("/api/v1/auth/me", headers=session.headers)
    etag = first.headers["ETag"]
    again = await client.get(
        "/api/v1/auth/me", headers={**session.headers, "If-None-Match": f"W/{etag}"}
    )
    assert again.status == 304
    assert again.headers["ETag"] == etag
    other = await client.get(
        "/api/v1/auth/me", headers={**session.headers, "If-None-Match": '"something-else"'}
    )
    assert other.status == 200


async def test_duplicate_email_is_a_conflict(client: Client) -> None:
    await register(client, "twice@example.com")
    body = {"email": "TWICE@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B"}
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status == 409
    assert_problem(await response.json(), 409, "conflict")


async def test_registration_can_be_disabled(make_client: MakeClient) -> None:
    client = await make_client(auth_allow_registration=False)
    body = {"email": "no@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B"}
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status == 403
    assert_problem(await response.json(), 403, "forbidden")


async def test_login_failures_are_indistinguishable(client: Client, store: SqlStore) -> None:
    session = await sign_up(client, "inactive@example.com")
    await register(client, "known@example.com")
    user = await store.get_user(session.user["id"])
    assert user is not None
    await store.update_user(dataclasses.replace(user, is_active=False))
    attempts = [
        ("nobody@example.com", PASSWORD),
        ("known@example.com", "wrong password!"),
        ("inactive@example.com", PASSWORD),
        ("known@example.com", PASSWORD + "x" * 80),
    ]
    answers = []
    for email, password in attempts:
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        body = await response.json()
        del body["requestId"]
        answers.append((response.status, response.headers["WWW-Authenticate"], body))
    assert answers[0][0] == 401
    assert answers[0][2]["code"] == "invalid_credentials"
    assert all(answer == answers[0] for answer in answers)


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: Client, store: SqlStore
) -> None:
    session = await sign_up(client, "rotate@example.com")
    first = await client.post("/api/v1/auth/refresh", json={"refreshToken": session.refresh})
    assert first.status == 200
    second = await first.json()
    assert second["refreshToken"] != session.refresh
    me = await client.get("/api/v1/auth/me", headers=bearer(second["accessToken"]))
    assert me.status == 200
    spent = await store.get_refresh_token(hash_refresh_token(session.refresh))
    assert spent is not None and spent.used_at is not None

    replay = await client.post("/api/v1/auth/refresh", json={"refreshToken": session.refresh})
    assert replay.status == 401
    assert_problem(await replay.json(), 401, "invalid_token")
    assert "Bearer" in replay.headers["WWW-Authenticate"]
    newest = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": second["refreshToken"]}
    )
    assert newest.status == 401
    revoked = await store.get_refresh_token(hash_refresh_token(second["refreshToken"]))
    assert revoked is not None and revoked.revoked_at is not None


async def test_unknown_refresh_token_is_401(client: Client) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refreshToken": "made-up"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_other_families_survive_a_replay(client: Client) -> None:
    laptop = await sign_up(client, "two-devices@example.com")
    phone = await login(client, "two-devices@example.com")
    await client.post("/api/v1/auth/refresh", json={"refreshToken": laptop.refresh})
    await client.post("/api/v1/auth/refresh", json={"refreshToken": laptop.refresh})
    response = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": phone["refreshToken"]}
    )
    assert response.status == 200


async def test_logout_revokes_the_refresh_token(client: Client) -> None:
    session = await sign_up(client, "bye@example.com")
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": session.refresh})
    assert response.status == 204
    again = await client.post("/api/v1/auth/refresh", json={"refreshToken": session.refresh})
    assert again.status == 401
    unknown = await client.post("/api/v1/auth/logout", json={"refreshToken": "never-issued"})
    assert unknown.status == 204


async def test_password_change_ends_every_session(client: Client) -> None:
    session = await sign_up(client, "change@example.com")
    other = await login(client, "change@example.com")
    response = await client.post(
        "/api/v1/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        headers=session.headers,
    )
    assert response.status == 204
    for access in (session.access, other["accessToken"]):
        me = await client.get("/api/v1/auth/me", headers=bearer(access))
        assert me.status == 401
        assert 'error="invalid_token"' in me.headers["WWW-Authenticate"]
    for refresh in (session.refresh, other["refreshToken"]):
        again = await client.post("/api/v1/auth/refresh", json={"refreshToken": refresh})
        assert again.status == 401
    old = await client.post(
        "/api/v1/auth/login", json={"email": "change@example.com", "password": PASSWORD}
    )
    assert old.status == 401
    await login(client, "change@example.com", NEW_PASSWORD)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currentPassword": "not my password", "newPassword": NEW_PASSWORD}, "currentPassword"),
        ({"currentPassword": PASSWORD, "newPassword": "short"}, "newPassword"),
    ],
)
async def test_password_change_rejects_bad_input(
    client: Client, body: dict[str, str], field: str
) -> None:
    session = await sign_up(client, "pw@example.com")
    response = await client.post("/api/v1/auth/password", json=body, headers=session.headers)
    assert response.status == 422
    problem = await response.json()
    assert [e["field"] for e in problem["errors"]] == [field]
    me = await client.get("/api/v1/auth/me", headers=session.headers)
    assert me.status == 200
