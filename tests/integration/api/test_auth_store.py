"""The auth pieces that talk to the store directly: secrets, first admin, refresh families."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.service import AuthService, InvalidCredentials, ensure_admin
from taskflowd.auth.tokens import (
    InvalidToken,
    RefreshTokens,
    Rotation,
    ensure_jwt_secret,
    hash_refresh_token,
)
from taskflowd.config import AuthSettings
from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import Role
from taskflowd.store import SqlStore
from tests.integration.store.factories import make_user


async def test_configured_secret_is_used_when_long_enough(store: SqlStore) -> None:
    secret = "s" * 32
    assert await ensure_jwt_secret(store, secret) == secret
    assert await store.get_setting("jwt_secret") is None
    with pytest.raises(ValueError, match=r"auth\.jwt_secret must be at least 32 bytes"):
        await ensure_jwt_secret(store, "s" * 31)


async def test_generated_secret_is_kept_once(store: SqlStore) -> None:
    first = await ensure_jwt_secret(store, "")
    assert len(first.encode()) >= 32
    assert await ensure_jwt_secret(store, "") == first
    assert await store.get_setting("jwt_secret") == first


async def test_first_admin_with_a_generated_password(
    store: SqlStore, hasher: PasswordHasher
) -> None:
    created = await ensure_admin(store, hasher, "", "")
    assert created is not None
    user, password = created
    assert user.email == "admin@localhost" and user.role is Role.ADMIN
    assert password is not None and len(password) >= 16
    assert await hasher.verify(password, user.password_hash)
    assert await ensure_admin(store, hasher, "", "") is None


async def test_first_admin_with_configured_credentials(
    store: SqlStore, hasher: PasswordHasher
) -> None:
    created = await ensure_admin(store, hasher, "Boss@Example.com", "configured password")
    assert created is not None
    assert created[0].email == "boss@example.com" and created[1] is None


async def test_no_admin_when_users_exist(store: SqlStore, hasher: PasswordHasher) -> None:
    await store.create_user(make_user())
    assert await ensure_admin(store, hasher, "a@example.com", "a good password") is None


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not an email", "long enough pw", "admin_email"),
        ("a@example.com", "short", "admin_password"),
    ],
)
async def test_first_admin_rejects_bad_settings(
    store: SqlStore, hasher: PasswordHasher, email: str, password: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await ensure_admin(store, hasher, email, password)


async def test_rotation_spends_and_continues_the_family(store: SqlStore) -> None:
    user = await store.create_user(make_user())
    tokens = RefreshTokens(store, ttl_s=3600)
    raw = await tokens.issue(user.id)
    rotation = await tokens.rotate(raw)
    assert rotation.user_id == user.id
    old = await store.get_refresh_token(hash_refresh_token(raw))
    new = await store.get_refresh_token(hash_refresh_token(rotation.refresh_token))
    assert old is not None and new is not None
    assert old.used_at is not None and new.used_at is None
    assert new.family_id == old.family_id == rotation.family_id


async def test_expired_refresh_token_is_refused(store: SqlStore) -> None:
    user = await store.create_user(make_user())
    past = RefreshTokens(store, ttl_s=60, clock=lambda: utcnow() - timedelta(hours=1))
    raw = await past.issue(user.id)
    with pytest.raises(InvalidToken, match="expired"):
        await RefreshTokens(store, ttl_s=60).rotate(raw)


async def test_concurrent_rotation_is_a_replay_that_ends_the_family(store: SqlStore) -> None:
    """At most one caller gets a successor, and even that one is revoked with the family."""
    user = await store.create_user(make_user())
    tokens = RefreshTokens(store, ttl_s=3600)
    raw = await tokens.issue(user.id)
    results = await asyncio.gather(*(tokens.rotate(raw) for _ in range(4)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, Rotation)]
    assert len(winners) <= 1
    assert sum(isinstance(r, InvalidToken) for r in results) >= 3
    for winner in winners:
        assert not await tokens.is_live(winner.refresh_token)
        with pytest.raises(InvalidToken):
            await tokens.rotate(winner.refresh_token)


async def test_a_revocation_that_missed_the_successor_still_ends_it(store: SqlStore) -> None:
    """A replay's revocation that ran while a rotation was issuing the successor revokes
    only the tokens it could see; the successor still dies with its family."""
    user = await store.create_user(make_user())
    tokens = RefreshTokens(store, ttl_s=3600)
    raw = await tokens.issue(user.id)
    successor = (await tokens.rotate(raw)).refresh_token
    spent = await store.get_refresh_token(hash_refresh_token(raw))
    assert spent is not None
    await store.db.execute(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE id = $1", spent.id, utcnow()
    )

    assert not await tokens.is_live(successor)
    with pytest.raises(InvalidToken):
        await tokens.rotate(successor)


class CountingHasher(PasswordHasher):
    """Counts bcrypt checks, to show every login failure costs the same work."""

    def __init__(self) -> None:
        super().__init__(rounds=4, threads=1)
        self.checks = 0

    async def verify(self, password: str, hashed: str | None) -> bool:
        self.checks += 1
        return await super().verify(password, hashed)


async def test_every_login_failure_does_one_bcrypt_check(store: SqlStore) -> None:
    hasher = CountingHasher()
    try:
        auth = AuthService(store, hasher, AuthSettings(bcrypt_rounds=4), "k" * 32)
        password = "a good password"
        await store.create_user(
            make_user(email="on@example.com", password_hash=await hasher.hash(password))
        )
        await store.create_user(
            make_user(
                email="off@example.com",
                password_hash=await hasher.hash(password),
                is_active=False,
            )
        )
        for email, attempt in [
            ("nobody@example.com", password),
            ("on@example.com", "wrong password"),
            ("off@example.com", password),
        ]:
            before = hasher.checks
            with pytest.raises(InvalidCredentials) as caught:
                await auth.login(email, attempt)
            assert str(caught.value) == "Invalid email or password."
            assert hasher.checks == before + 1
    finally:
        hasher.close()
