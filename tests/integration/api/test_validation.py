"""Input checks before any service runs: 415, 413, 400 and 422 with named fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.store import SqlStore
from tests.integration.api.conftest import (
    PASSWORD,
    Client,
    MakeClient,
    assert_problem,
    sign_in_admin,
)

REGISTER = "/api/v1/auth/register"
GOOD = {"email": "v@example.com", "password": PASSWORD, "firstName": "Val", "lastName": "Id"}


async def problem_of(client: Client, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(REGISTER, json=body)
    return response.status, await response.json()


def fields(problem: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in problem["errors"]}


@pytest.mark.parametrize(
    ("change", "field", "message_part"),
    [
        ({"firstName": None}, "firstName", "required"),
        ({"email": 42}, "email", "string"),
        ({"lastName": True}, "lastName", "string"),
        ({"email": "not-an-email"}, "email", "email address"),
        ({"password": "short"}, "password", "at least 8 bytes"),
        ({"password": "x" * 73}, "password", "at most 72 bytes"),
        ({"password": "é" * 37}, "password", "at most 72 bytes"),
        ({"firstName": "   "}, "firstName", "at least 1 character"),
        ({"firstName": "n" * 101}, "firstName", "at most 100 characters"),
        ({"role": "ADMIN"}, "role", "not an accepted field"),
        ({"id": "chosen-id"}, "id", "not an accepted field"),
        ({"first_name": "Snake"}, "first_name", "not an accepted field"),
    ],
)
async def test_register_names_each_bad_field(
    client: Client, change: dict[str, Any], field: str, message_part: str
) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    status, problem = await problem_of(client, body)
    assert status == 422, problem
    assert_problem(problem, 422, "validation_failed")
    assert field in fields(problem)
    assert message_part in fields(problem)[field]


async def test_multibyte_password_within_72_bytes_is_fine(client: Client) -> None:
    status, _ = await problem_of(client, {**GOOD, "password": "é" * 36})
    assert status == 201


async def test_every_bad_field_is_reported_at_once(client: Client) -> None:
    status, problem = await problem_of(client, {"email": "x", "password": 1, "extra": 2})
    assert status == 422
    assert set(fields(problem)) == {"email", "password", "firstName", "lastName", "extra"}


async def test_bool_given_as_string_is_rejected(
    client: Client, store: SqlStore, hasher: PasswordHasher
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    response = await client.patch(
        f"/api/v1/users/{admin.user['id']}", json={"isActive": "true"}, headers=admin.headers
    )
    assert response.status == 422
    assert fields(await response.json()) == {"isActive": "Input should be a valid boolean"}


async def test_body_must_be_an_object(client: Client) -> None:
    status, problem = await problem_of(client, [GOOD])
    assert status == 422
    assert "$" in fields(problem)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_non_json_content_type_is_415(client: Client, content_type: str) -> None:
    response = await client.post(
        REGISTER, data=b'{"email": "a@b.c"}', headers={"Content-Type": content_type}
    )
    assert response.status == 415
    assert_problem(await response.json(), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/merge-patch+json",
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/json;charset=utf-8",
        'application/json; charset="utf-8"',
    ],
)
async def test_json_types_are_accepted(client: Client, content_type: str) -> None:
    response = await client.post(REGISTER, data=b"{}", headers={"Content-Type": content_type})
    assert response.status == 422


@pytest.mark.parametrize("raw", [b"{", b"", b"{'single': 1}", b"\xff\xfe", b"[1,]", b"NaN"])
async def test_malformed_json_is_400(client: Client, raw: bytes) -> None:
    response = await client.post(REGISTER, data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert_problem(await response.json(), 400, "malformed_json")


async def test_deeply_nested_json_is_400(client: Client) -> None:
    nested: Any = {}
    for _ in range(40):
        nested = {"a": nested}
    status, problem = await problem_of(client, {**GOOD, "firstName": nested})
    assert status == 400
    assert_problem(problem, 400, "json_too_deep")


async def test_nesting_within_the_limit_reaches_validation(client: Client) -> None:
    nested: Any = []
    for _ in range(30):
        nested = [nested]
    status, problem = await problem_of(client, {**GOOD, "firstName": nested})
    assert status == 422
    assert "firstName" in fields(problem)


async def test_large_body_is_413(make_client: MakeClient) -> None:
    client = await make_client(http_max_body_bytes=2048)
    status, problem = await problem_of(client, {**GOOD, "firstName": "x" * 4096})
    assert status == 413
    assert_problem(problem, 413, "payload_too_large")


async def test_large_chunked_body_is_413(make_client: MakeClient) -> None:
    client = await make_client(http_max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"firstName": "'
        for _ in range(64):
            yield b"x" * 512
        yield b'"}'

    response = await client.post(
        REGISTER, data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert_problem(await response.json(), 413, "payload_too_large")


async def test_small_chunked_body_is_read(make_client: MakeClient) -> None:
    client = await make_client(http_max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "chunk@example.com", '
        yield f'"password": "{PASSWORD}", "firstName": "C", "lastName": "K"}}'.encode()

    response = await client.post(
        REGISTER, data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 201


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=1&limit=2", "limit"),
        ("cursor=", "cursor"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("colour=blue", "colour"),
    ],
)
async def test_bad_query_parameters_are_422(
    client: Client, store: SqlStore, hasher: PasswordHasher, query: str, field: str
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    response = await client.get(f"/api/v1/users?{query}", headers=admin.headers)
    assert response.status == 422
    assert field in fields(await response.json())
