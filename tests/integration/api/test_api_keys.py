"""API keys over the real API and each SQL backend: shown once, stored hashed, act as
their user, revoked at once; and the principal cache never outlives a change."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from datetime import timedelta
from typing import Any

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.domain.entities import utcnow
from taskflowd.events import EventBus
from taskflowd.store import SqlStore
from tests.integration.api.conftest import (
    Client,
    MakeClient,
    Session,
    assert_problem,
    bearer,
    login,
    sign_in_admin,
    sign_up,
)
from tests.integration.queue.polling import eventually

KEYS = "/api/v1/api-keys"


async def new_key(client: Client, session: Session, **body: Any) -> dict[str, Any]:
    response = await client.post(KEYS, json={"name": "ci", **body}, headers=session.headers)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def test_a_key_is_shown_once_and_stored_hashed(client: Client, store: SqlStore) -> None:
    owner = await sign_up(client, "keys@example.com")
    created = await new_key(client, owner)
    raw = created["key"]
    assert raw.startswith("tfk_") and len(raw) >= 4 + 43
    assert created["prefix"] == raw[:12] and created["lastUsedAt"] is None
    listed = await (await client.get(KEYS, headers=owner.headers)).json()
    assert [k["id"] for k in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0]
    rows = await store.db.fetch("SELECT * FROM api_keys")
    assert raw not in repr([dict(r) for r in rows])
    assert rows[0]["key_hash"] == hashlib.sha256(raw.encode()).hexdigest()


async def test_a_key_acts_as_its_user(client: Client) -> None:
    owner = await sign_up(client, "prog@example.com")
    raw = (await new_key(client, owner))["key"]
    me = await client.get("/api/v1/auth/me", headers=bearer(raw))
    assert me.status == 200
    assert (await me.json())["email"] == "prog@example.com"
    listed = await (await client.get(KEYS, headers=bearer(raw))).json()
    assert listed["items"][0]["lastUsedAt"] is not None


async def test_a_key_cannot_create_keys(client: Client) -> None:
    owner = await sign_up(client, "nokeys@example.com")
    raw = (await new_key(client, owner))["key"]
    response = await client.post(KEYS, json={"name": "more"}, headers=bearer(raw))
    assert response.status == 403
    assert_problem(await response.json(), 403, "forbidden")


async def test_a_revoked_key_is_refused_at_once(client: Client) -> None:
    owner = await sign_up(client, "revoke@example.com")
    created = await new_key(client, owner)
    assert (await client.get("/api/v1/auth/me", headers=bearer(created["key"]))).status == 200
    gone = await client.delete(f"{KEYS}/{created['id']}", headers=owner.headers)
    assert gone.status == 204
    refused = await client.get("/api/v1/auth/me", headers=bearer(created["key"]))
    assert refused.status == 401
    assert_problem(await refused.json(), 401, "invalid_token")
    again = await client.delete(f"{KEYS}/{created['id']}", headers=owner.headers)
    assert again.status == 404


async def test_keys_are_private_to_their_user_but_admins_revoke_any(
    client: Client, store: SqlStore, hasher: PasswordHasher
) -> None:
    admin = await sign_in_admin(client, store, hasher)
    owner = await sign_up(client, "mine@example.com")
    other = await sign_up(client, "theirs@example.com")
    created = await new_key(client, owner)
    assert (await (await client.get(KEYS, headers=other.headers)).json())["items"] == []
    stranger = await client.delete(f"{KEYS}/{created['id']}", headers=other.headers)
    assert stranger.status == 404
    assert (await client.delete(f"{KEYS}/{created['id']}", headers=admin.headers)).status == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(created["key"]))).status == 401


async def test_expiry_and_bad_input(client: Client) -> None:
    owner = await sign_up(client, "expire@example.com")
    past = (utcnow() - timedelta(seconds=1)).isoformat()
    response = await client.post(
        KEYS, json={"name": "old", "expiresAt": past}, headers=owner.headers
    )
    assert response.status == 422
    assert {e["field"] for e in (await response.json())["errors"]} == {"expiresAt"}
    for body in ({"name": ""}, {"name": "x" * 101}, {}, {"name": "ok", "extra": 1}):
        assert (await client.post(KEYS, json=body, headers=owner.headers)).status == 422
    soon = (utcnow() + timedelta(seconds=1)).isoformat()
    raw = (await new_key(client, owner, expiresAt=soon))["key"]

    async def refused() -> bool:
        me = await client.get("/api/v1/auth/me", headers=bearer(raw))
        return me.status == 401

    await eventually(refused, "the key to expire")


async def test_an_unknown_or_malformed_key_is_refused(client: Client) -> None:
    for token in ("tfk_" + "A" * 43, "tfk_", "tfk_\u00e9"):
        response = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert response.status == 401


async def test_deactivation_and_role_changes_end_cached_principals_at_once(
    make_client: MakeClient, store: SqlStore, hasher: PasswordHasher
) -> None:
    client = await make_client(auth_principal_cache_ttl_s=60.0, events=EventBus())
    admin = await sign_in_admin(client, store, hasher)
    user = await sign_up(client, "cached@example.com")
    raw = (await new_key(client, user))["key"]
    for headers in (user.headers, bearer(raw)):
        assert (await client.get("/api/v1/auth/me", headers=headers)).status == 200
    patched = await client.patch(
        f"/api/v1/users/{user.user['id']}", json={"isActive": False}, headers=admin.headers
    )
    assert patched.status == 200
    for headers in (user.headers, bearer(raw)):
        assert (await client.get("/api/v1/auth/me", headers=headers)).status == 401
    second = await sign_up(client, "promoted@example.com")
    await client.patch(
        f"/api/v1/users/{second.user['id']}", json={"role": "ADMIN"}, headers=admin.headers
    )
    promoted = bearer((await login(client, "promoted@example.com"))["accessToken"])
    assert (await client.get("/api/v1/users", headers=promoted)).status == 200
    await client.patch(
        f"/api/v1/users/{second.user['id']}", json={"role": "USER"}, headers=admin.headers
    )
    demoted = await client.get("/api/v1/users", headers=promoted)
    assert demoted.status == 401, "a role change ends the sessions issued before it"


async def test_a_change_behind_the_services_back_holds_within_the_cache_ttl(
    make_client: MakeClient, store: SqlStore
) -> None:
    """`taskflowd user deactivate` writes the database directly: the cache's TTL bounds
    how long a node may still honour the user's credentials."""
    client = await make_client(auth_principal_cache_ttl_s=0.5)
    user = await sign_up(client, "cli@example.com")
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status == 200
    found = await store.get_user(user.user["id"])
    assert found is not None
    await store.update_user(dataclasses.replace(found, is_active=False))

    async def refused() -> bool:
        return (await client.get("/api/v1/auth/me", headers=user.headers)).status == 401

    await eventually(refused, "the deactivation to reach the cache")


async def test_requests_that_miss_the_cache_together_read_the_key_once(
    client: Client, store: SqlStore, monkeypatch: Any
) -> None:
    """A flood of requests with one key, arriving as its cached principal expires, reads
    the key once rather than once per request in flight."""
    user = await sign_up(client, "flood@example.com")
    raw = (await new_key(client, user))["key"]
    reads: list[str] = []
    read_key = store.get_api_key_by_hash

    async def counted(key_hash: str) -> Any:
        reads.append(key_hash)
        return await read_key(key_hash)

    monkeypatch.setattr(store, "get_api_key_by_hash", counted)
    answers = await asyncio.gather(
        *(client.get("/api/v1/auth/me", headers=bearer(raw)) for _ in range(8))
    )
    assert [a.status for a in answers] == [200] * 8
    assert len(reads) == 1


async def test_a_request_joins_no_look_up_older_than_the_cache_ttl(
    make_client: MakeClient, store: SqlStore, monkeypatch: Any
) -> None:
    """With the principal cache off (TTL 0) every request reads the user itself: one that
    comes after a deactivation behind the service's back is refused, even while an
    earlier request's look-up, which read the user before it, is still under way."""
    client = await make_client(auth_principal_cache_ttl_s=0.0)
    user = await sign_up(client, "slow@example.com")
    entered, gate = asyncio.Event(), asyncio.Event()
    read_memberships = store.memberships

    async def held(user_id: str) -> Any:
        if not gate.is_set():
            entered.set()
            await gate.wait()
        return await read_memberships(user_id)

    monkeypatch.setattr(store, "memberships", held)
    first = asyncio.create_task(client.get("/api/v1/auth/me", headers=user.headers))
    await asyncio.wait_for(entered.wait(), 5.0)  # the first look-up has read the user
    found = await store.get_user(user.user["id"])
    assert found is not None
    await store.update_user(dataclasses.replace(found, is_active=False))
    later = asyncio.create_task(client.get("/api/v1/auth/me", headers=user.headers))
    await asyncio.wait({later}, timeout=5.0)  # it returns at once unless it waits on the first
    gate.set()
    assert (await later).status == 401
    assert (await first).status == 200
