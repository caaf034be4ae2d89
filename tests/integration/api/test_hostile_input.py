"""Never a 500 for anything a client sends: odd strings, numbers and ids everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.store import SqlStore
from tests.integration.api.conftest import PASSWORD, Client, sign_in_admin

ODD_STRINGS = ["\u0000", "a\u0000b@example.com", "\ud7ff\ue000", "💥" * 50, "\x1b[31m", " "]
ODD_VALUES: list[Any] = [*ODD_STRINGS, 10**30, -1, 1.5, 1e308, [], {}, None, True]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
async def test_odd_values_in_public_bodies(client: Client, value: Any) -> None:
    for path, body in [
        ("/api/v1/auth/login", {"email": value, "password": value}),
        ("/api/v1/auth/login", {"email": value, "password": PASSWORD}),
        (
            "/api/v1/auth/register",
            {"email": value, "password": PASSWORD, "firstName": value, "lastName": "x"},
        ),
        ("/api/v1/auth/refresh", {"refreshToken": value}),
        ("/api/v1/auth/logout", {"refreshToken": value}),
    ]:
        response = await client.post(path, json=body)
        assert response.status < 500, (path, body, await response.text())


@pytest.mark.parametrize(
    "raw", [b'{"email": 1e400}', b'{"email": 123456789012345678901234567890}', b'"\\ud800"']
)
async def test_odd_json_numbers_and_escapes(client: Client, raw: bytes) -> None:
    response = await client.post(
        "/api/v1/auth/login", data=raw, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status < 500


@pytest.mark.parametrize("user_id", ["%00", "a%00b", "%F0%9F%92%A5", "x" * 300, "..%2F..", "'"])
async def test_odd_ids_in_paths(
    client: Client, store: SqlStore, hasher: PasswordHasher, user_id: str
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    for method in ("GET", "PATCH", "DELETE"):
        body = {"lastName": "x"} if method == "PATCH" else None
        response = await client.request(
            method, f"/api/v1/users/{user_id}", json=body, headers=admin.headers
        )
        assert response.status in (404, 405), (method, user_id, await response.text())


NUL_IN_CURSOR = "MjAyNC0wMS0wMVQwMDowMDowMCswMDowMHxhAGI"  # "2024-01-01T00:00:00+00:00|a\0b"


@pytest.mark.parametrize(
    "cursor",
    [
        "%00",
        "AAAA",
        "x" * 512,
        "MjAyNHw%3D",
        "w4k",
        "a.b",
        NUL_IN_CURSOR,
    ],
)
async def test_odd_cursors(
    client: Client, store: SqlStore, hasher: PasswordHasher, cursor: str
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    response = await client.get(f"/api/v1/users?cursor={cursor}", headers=admin.headers)
    assert response.status == 422, await response.text()
