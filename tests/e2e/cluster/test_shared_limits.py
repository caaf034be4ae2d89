"""Limits hold across the cluster when it shares a Redis (`cluster.redis`): a user's API
quota and the login quota are spent on any node. Without Redis, logins fail closed with
a 503 while reads go on (the API limit fails open) and /ready names Redis; once Redis is
back both work again by themselves."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.cluster.conftest import Api, Cluster
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Daemons, eventually
from tests.integration.cluster.private_redis import PrivateRedis

API_LIMIT = 5  # one request every 12 s once the burst is spent
LOGIN_LIMIT = 3


@pytest.mark.slow
async def test_limits_are_shared_and_login_fails_closed_without_redis(
    daemons: Daemons, pg_url: str, private_redis: PrivateRedis, api: Api
) -> None:
    cluster = Cluster(
        daemons,
        pg_url,
        "database",
        {
            "TASKFLOW_CLUSTER__REDIS": private_redis.url,
            "TASKFLOW_AUTH__API_LIMIT_PER_MIN": str(API_LIMIT),
            "TASKFLOW_AUTH__LOGIN_LIMIT_PER_MIN": str(LOGIN_LIMIT),
        },
    )
    a, b = await cluster.start_many(2)
    token = await api.login(a)

    # The user's quota, spent on node a, is spent on node b too.
    started = time.monotonic()
    allowed_on_a = 0
    while (await api.call(a, "GET", "/api/v1/tasks", token))[0] == 200:
        allowed_on_a += 1
    refused_at = time.monotonic()
    status, body = await api.call(b, "GET", "/api/v1/tasks", token)
    refill_s = 60 / API_LIMIT
    assert API_LIMIT <= allowed_on_a <= API_LIMIT + (refused_at - started) // refill_s
    assert status == 429 or time.monotonic() - refused_at >= refill_s, body

    # Wrong passwords for one email: the login quota is shared as well.
    wrong = {"email": "mallory@example.com", "password": "not-the-password"}
    statuses = [
        (await api.call(node, "POST", "/api/v1/auth/login", json=wrong))[0] for node in (a, b, a, b)
    ]
    assert statuses == [401] * LOGIN_LIMIT + [429]

    private_redis.kill()

    async def login_refused() -> bool:
        status, body = await api.call(
            b, "POST", "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        return status == 503 and body["code"] == "login_unavailable"

    await eventually(login_refused, "logins to fail closed without Redis")
    # Reads go on, unlimited for now: the spent API quota is not enforced without Redis.
    for node in (a, b, a, b, a, b):
        status, body = await api.call(node, "GET", "/api/v1/tasks", token)
        assert status == 200, body
    for node in (a, b):
        status, ready = await api.ready(node)
        assert status == 503
        assert ready["checks"]["redis"]["ok"] is False, ready
        assert ready["checks"]["database"]["ok"] is True, ready

    await asyncio.to_thread(private_redis.start)  # empty: every quota starts afresh

    async def login_works() -> bool:
        status, _ = await api.call(
            a, "POST", "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        return status == 200

    await eventually(login_works, "logins to work again once Redis is back")
    for node in (a, b):
        assert (await api.ready(node))[0] == 200
    assert a.running and b.running
    await cluster.stop_all()
