"""User administration: ADMIN only, no self-promotion or self-lockout, sessions end on change."""

from __future__ import annotations

from typing import Any

import pytest

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.store import SqlStore
from tests.integration.api.conftest import (
    PASSWORD,
    Client,
    Session,
    assert_problem,
    bearer,
    login,
    sign_in_admin,
    sign_up,
)

USERS = "/api/v1/users"


@pytest.fixture
async def admin(client: Client, store: SqlStore, hasher: PasswordHasher) -> Session:
    return await sign_in_admin(client, store, hasher)


@pytest.fixture
async def member(client: Client) -> Session:
    return await sign_up(client, "member@example.com")


def new_user(email: str, **extra: Any) -> dict[str, Any]:
    return {"email": email, "password": PASSWORD, "firstName": "N", "lastName": "U", **extra}


async def test_users_endpoints_are_admin_only(client: Client, member: Session) -> None:
    own = f"{USERS}/{member.user['id']}"
    for method, path, body in [
        ("GET", USERS, None),
        ("POST", USERS, new_user("x@example.com")),
        ("GET", own, None),
        ("PATCH", own, {"role": "ADMIN"}),
        ("DELETE", own, None),
    ]:
        response = await client.request(method, path, json=body, headers=member.headers)
        assert response.status == 403, (method, path)
        assert_problem(await response.json(), 403, "forbidden")
    me = await client.get("/api/v1/auth/me", headers=member.headers)
    assert (await me.json())["role"] == "USER"


async def test_users_endpoints_need_a_token(client: Client) -> None:
    response = await client.get(USERS)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="taskflowd"'


async def test_list_is_paginated(client: Client, admin: Session) -> None:
    for n in range(3):
        await sign_up(client, f"page{n}@example.com")
    first = await client.get(f"{USERS}?limit=2", headers=admin.headers)
    page = await first.json()
    assert len(page["items"]) == 2 and page["nextCursor"]
    rest = await client.get(f"{USERS}?limit=2&cursor={page['nextCursor']}", headers=admin.headers)
    second = await rest.json()
    assert len(second["items"]) == 2 and second["nextCursor"] is None
    emails = [u["email"] for u in page["items"] + second["items"]]
    assert len(set(emails)) == 4 and "root@example.com" in emails
    assert all("passwordHash" not in u and "password_hash" not in u for u in page["items"])


async def test_get_user_with_etag(client: Client, admin: Session, member: Session) -> None:
    response = await client.get(f"{USERS}/{member.user['id']}", headers=admin.headers)
    assert response.status == 200
    assert await response.json() == member.user
    cached = await client.get(
        f"{USERS}/{member.user['id']}",
        headers={**admin.headers, "If-None-Match": response.headers["ETag"]},
    )
    assert cached.status == 304


async def test_admin_creates_an_admin(client: Client, admin: Session) -> None:
    response = await client.post(
        USERS, json=new_user("second@example.com", role="ADMIN"), headers=admin.headers
    )
    assert response.status == 201
    created = await response.json()
    assert created["role"] == "ADMIN"
    assert response.headers["Location"] == f"{USERS}/{created['id']}"
    tokens = await login(client, "second@example.com")
    listed = await client.get(USERS, headers=bearer(tokens["accessToken"]))
    assert listed.status == 200
    duplicate = await client.post(USERS, json=new_user("SECOND@example.com"), headers=admin.headers)
    assert duplicate.status == 409


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_unknown_id_is_404(client: Client, admin: Session, method: str) -> None:
    body = {"firstName": "X"} if method == "PATCH" else None
    response = await client.request(
        method, f"{USERS}/00000000-0000-0000-0000-000000000000", json=body, headers=admin.headers
    )
    assert response.status == 404
    assert_problem(await response.json(), 404, "not_found")


@pytest.mark.parametrize("change", [{"role": "USER"}, {"isActive": False}])
async def test_admin_cannot_demote_or_deactivate_self(
    client: Client, admin: Session, change: dict[str, Any]
) -> None:
    response = await client.patch(f"{USERS}/{admin.user['id']}", json=change, headers=admin.headers)
    assert response.status == 403
    problem = await response.json()
    assert "yourself" in problem["detail"] or "your own" in problem["detail"]
    me = await client.get("/api/v1/auth/me", headers=admin.headers)
    assert me.status == 200
    assert (await me.json())["role"] == "ADMIN"


async def test_admin_cannot_delete_self(client: Client, admin: Session) -> None:
    response = await client.delete(f"{USERS}/{admin.user['id']}", headers=admin.headers)
    assert response.status == 403
    assert (await client.get("/api/v1/auth/me", headers=admin.headers)).status == 200


async def test_admin_may_rename_self(client: Client, admin: Session) -> None:
    response = await client.patch(
        f"{USERS}/{admin.user['id']}",
        json={"firstName": "Grace", "role": "ADMIN", "isActive": True},
        headers=admin.headers,
    )
    assert response.status == 200
    assert (await response.json())["firstName"] == "Grace"
    assert (await client.get("/api/v1/auth/me", headers=admin.headers)).status == 200


async def test_role_change_ends_sessions(client: Client, admin: Session, member: Session) -> None:
    response = await client.patch(
        f"{USERS}/{member.user['id']}", json={"role": "ADMIN"}, headers=admin.headers
    )
    assert response.status == 200
    assert (await response.json())["role"] == "ADMIN"
    assert (await client.get("/api/v1/auth/me", headers=member.headers)).status == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refreshToken": member.refresh})
    assert refresh.status == 401
    tokens = await login(client, "member@example.com")
    assert (await client.get(USERS, headers=bearer(tokens["accessToken"]))).status == 200


async def test_deactivation_ends_sessions_and_logins(
    client: Client, admin: Session, member: Session
) -> None:
    response = await client.patch(
        f"{USERS}/{member.user['id']}", json={"isActive": False}, headers=admin.headers
    )
    assert (await response.json())["isActive"] is False
    assert (await client.get("/api/v1/auth/me", headers=member.headers)).status == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refreshToken": member.refresh})
    assert refresh.status == 401
    again = await client.post(
        "/api/v1/auth/login", json={"email": "member@example.com", "password": PASSWORD}
    )
    assert again.status == 401


async def test_name_change_keeps_sessions(client: Client, admin: Session, member: Session) -> None:
    response = await client.patch(
        f"{USERS}/{member.user['id']}", json={"lastName": "Byron"}, headers=admin.headers
    )
    assert (await response.json())["lastName"] == "Byron"
    assert (await client.get("/api/v1/auth/me", headers=member.headers)).status == 200


async def test_delete_user(client: Client, admin: Session, member: Session) -> None:
    response = await client.delete(f"{USERS}/{member.user['id']}", headers=admin.headers)
    assert response.status == 204
    assert (await client.get("/api/v1/auth/me", headers=member.headers)).status == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refreshToken": member.refresh})
    assert refresh.status == 401
    gone = await client.get(f"{USERS}/{member.user['id']}", headers=admin.headers)
    assert gone.status == 404
    again = await client.delete(f"{USERS}/{member.user['id']}", headers=admin.headers)
    assert again.status == 404
