"""Changes that end access hold on every node at once: two daemons share PostgreSQL (and,
for the Redis queue, Redis), each caches who a credential belongs to for a minute, and a
key revoked or a user deactivated on one node is refused by the other within a second."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.e2e.cluster.conftest import Cluster
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DaemonProcess, Daemons, eventually

# Without the events only the cache's expiry would end a principal: a minute.
CACHE_ENV = {"TASKFLOW_AUTH__PRINCIPAL_CACHE_TTL_S": "60"}
WITHIN_S = 1.0


async def call(
    session: aiohttp.ClientSession,
    node: DaemonProcess,
    method: str,
    path: str,
    token: str,
    body: Any = None,
) -> tuple[int, Any]:
    async with session.request(
        method, node.url(path), json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        data = await response.json() if response.status != 204 else None
        return response.status, data


async def login(session: aiohttp.ClientSession, node: DaemonProcess, email: str, pw: str) -> str:
    async with session.post(
        node.url("/api/v1/auth/login"), json={"email": email, "password": pw}
    ) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["accessToken"]
        return token


async def refused_within(
    session: aiohttp.ClientSession, node: DaemonProcess, token: str, what: str
) -> None:
    async def refused() -> bool:
        status, _ = await call(session, node, "GET", "/api/v1/auth/me", token)
        return status == 401

    await eventually(refused, what, timeout_s=WITHIN_S, interval_s=0.02)


async def test_revocation_and_deactivation_reach_every_node(
    daemons: Daemons, pg_url: str, queue_url: str
) -> None:
    cluster = Cluster(daemons, pg_url, queue_url, env=CACHE_ENV)
    one, two = await cluster.start_many(2)
    async with aiohttp.ClientSession(trust_env=False) as session:
        admin = await login(session, one, ADMIN_EMAIL, ADMIN_PASSWORD)
        body = {
            "email": "prog@example.com",
            "password": "program-password-1",
            "firstName": "Pro",
            "lastName": "Gram",
        }
        async with session.post(one.url("/api/v1/auth/register"), json=body) as response:
            assert response.status == 201
            user = await response.json()
        token = await login(session, one, body["email"], body["password"])
        status, key = await call(session, one, "POST", "/api/v1/api-keys", token, {"name": "ci"})
        assert status == 201
        for node in (one, two):
            for credential in (token, key["key"]):
                status, _ = await call(session, node, "GET", "/api/v1/auth/me", credential)
                assert status == 200, "each node now holds the principal in its cache"

        status, _ = await call(session, one, "DELETE", f"/api/v1/api-keys/{key['id']}", token)
        assert status == 204
        await refused_within(session, two, key["key"], "the other node to refuse the key")
        status, _ = await call(session, two, "GET", "/api/v1/auth/me", token)
        assert status == 200, "revoking a key leaves its user's sessions alone"

        status, _ = await call(
            session, one, "PATCH", f"/api/v1/users/{user['id']}", admin, {"isActive": False}
        )
        assert status == 200
        await refused_within(session, two, token, "the other node to refuse the user")
    await cluster.stop_all()


async def sign_up(session: aiohttp.ClientSession, node: DaemonProcess, email: str) -> str:
    """Register `email` through `node` and log in; returns an access token."""
    body = {"email": email, "password": "member-password-1", "firstName": "A", "lastName": "B"}
    async with session.post(node.url("/api/v1/auth/register"), json=body) as response:
        assert response.status == 201, await response.text()
    return await login(session, node, email, body["password"])


async def test_org_role_changes_and_removals_reach_every_node(
    daemons: Daemons, pg_url: str, queue_url: str
) -> None:
    cluster = Cluster(daemons, pg_url, queue_url, env=CACHE_ENV)
    one, two = await cluster.start_many(2)
    async with aiohttp.ClientSession(trust_env=False) as session:
        owner = await sign_up(session, one, "org-owner@example.com")
        member = await sign_up(session, one, "org-member@example.com")
        _, orgs = await call(session, one, "GET", "/api/v1/orgs", owner)
        (org,) = orgs["items"]
        members = f"/api/v1/orgs/{org['id']}/members"
        status, added = await call(
            session, one, "POST", members, owner, {"email": "org-member@example.com"}
        )
        assert status == 201, added
        in_org = {"Authorization": f"Bearer {member}", "X-Taskflow-Org": org["id"]}

        async def create_task(node: DaemonProcess) -> int:
            body = {"name": "shared", "type": "ON_DEMAND"}
            async with session.post(
                node.url("/api/v1/tasks"), json=body, headers=in_org
            ) as response:
                return response.status

        for node in (one, two):
            assert await create_task(node) == 201, "each node now caches the MEMBER role"

        status, _ = await call(
            session, one, "PATCH", f"{members}/{added['userId']}", owner, {"role": "VIEWER"}
        )
        assert status == 200

        async def demoted() -> bool:
            return await create_task(two) == 403

        await eventually(
            demoted,
            "the other node to refuse the VIEWER's write",
            timeout_s=WITHIN_S,
            interval_s=0.02,
        )

        async def listed(node: DaemonProcess) -> int:
            async with session.get(node.url("/api/v1/tasks"), headers=in_org) as response:
                return response.status

        assert await listed(two) == 200, "a VIEWER still reads"
        status, _ = await call(session, one, "DELETE", f"{members}/{added['userId']}", owner)
        assert status == 204

        async def removed() -> bool:
            return await listed(two) == 404

        await eventually(
            removed,
            "the other node to forget the removed member",
            timeout_s=WITHIN_S,
            interval_s=0.02,
        )
    await cluster.stop_all()
