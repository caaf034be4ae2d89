"""Rate limits: login per client address and email, API calls per user, 429 with headers."""

from __future__ import annotations

from tests.integration.api.conftest import PASSWORD, MakeClient, assert_problem, register, sign_up


async def test_login_is_limited_per_address_and_email(make_client: MakeClient) -> None:
    client = await make_client(auth_login_limit_per_min=10)
    await register(client, "target@example.com")
    body = {"email": "target@example.com", "password": "wrong password"}
    for attempt in range(10):
        response = await client.post("/api/v1/auth/login", json=body)
        assert response.status == 401
        assert response.headers["RateLimit-Limit"] == "10"
        assert response.headers["RateLimit-Remaining"] == str(9 - attempt)
    blocked = await client.post(
        "/api/v1/auth/login", json={"email": "TARGET@example.com", "password": PASSWORD}
    )
    assert blocked.status == 429
    assert_problem(await blocked.json(), 429, "rate_limited")
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.headers["RateLimit-Limit"] == "10"
    assert blocked.headers["RateLimit-Remaining"] == "0"
    assert int(blocked.headers["RateLimit-Reset"]) >= 1
    other = await client.post(
        "/api/v1/auth/login", json={"email": "someone@example.com", "password": PASSWORD}
    )
    assert other.status == 401


async def test_api_calls_are_limited_per_user(make_client: MakeClient) -> None:
    client = await make_client(auth_api_limit_per_min=5)
    first = await sign_up(client, "busy@example.com")
    second = await sign_up(client, "calm@example.com")
    statuses = []
    for _ in range(6):
        response = await client.get("/api/v1/auth/me", headers=first.headers)
        statuses.append(response.status)
    assert statuses == [200] * 5 + [429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Limit"] == "5"
    calm = await client.get("/api/v1/auth/me", headers=second.headers)
    assert calm.status == 200
    assert calm.headers["RateLimit-Remaining"] == "4"


async def test_health_is_never_limited(make_client: MakeClient) -> None:
    client = await make_client(auth_api_limit_per_min=1)
    for _ in range(3):
        response = await client.get("/health")
        assert response.status == 200
        assert "RateLimit-Limit" not in response.headers
