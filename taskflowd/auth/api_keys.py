"""API keys: the credential of programs.

A key is `tfk_` followed by 43 characters of base64url (32 random bytes), shown once at
creation. Only its SHA-256 is stored (a key has the entropy of a secret, not of a
password, so a fast hash is the right one), with the first characters as a visible
prefix. A key acts as its user in the org of the request that created it; it cannot
mint further keys, so a leaked key can be revoked for good.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from taskflowd.auth.principals import Principal
from taskflowd.auth.tokens import Clock, InvalidToken
from taskflowd.domain.entities import ApiKey, User, utcnow
from taskflowd.domain.enums import Role
from taskflowd.domain.errors import Conflict, FieldError, NotFound, ValidationFailed
from taskflowd.domain.orgs import Actor, OrgRole, as_actor
from taskflowd.store.base import Page, Store
from taskflowd.store.errors import StoreError

KEY_PREFIX = "tfk_"
VISIBLE_CHARS = 12
"""How much of a key is kept in clear (the `tfk_` prefix and 8 random characters)."""
MAX_KEYS_PER_USER = 100
MAX_NAME_LENGTH = 100
_TOUCH_EVERY = timedelta(minutes=1)


def is_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeys:
    """Create, list, revoke and check API keys. `on_revoke(key)` runs after a revocation
    (to end cached principals on every node)."""

    def __init__(
        self,
        store: Store,
        on_revoke: Callable[[ApiKey], None] = lambda key: None,
        clock: Clock = utcnow,
    ) -> None:
        self._store = store
        self._on_revoke = on_revoke
        self._clock = clock

    async def create(
        self, owner: User | Actor, name: str, expires_at: datetime | None
    ) -> tuple[ApiKey, str]:
        """A new key of `owner`, bound to the org it acts in, and its raw value (the
        only time it is known)."""
        actor = as_actor(owner)
        now = self._clock()
        problems = []
        if not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
            problems.append(
                FieldError("name", f"must be 1 to {MAX_NAME_LENGTH} printable characters")
            )
        if expires_at is not None and expires_at <= now:
            problems.append(FieldError("expiresAt", "must be in the future"))
        if problems:
            raise ValidationFailed(problems)
        live = await self._store.list_api_keys(actor.id, None, MAX_KEYS_PER_USER)
        if len(live.items) >= MAX_KEYS_PER_USER:
            raise Conflict(
                f"You have {MAX_KEYS_PER_USER} API keys already; revoke one you no longer use."
            )
        raw = new_key()
        key = ApiKey(
            id=str(uuid.uuid4()),
            user_id=actor.id,
            name=name.strip(),
            prefix=raw[:VISIBLE_CHARS],
            key_hash=hash_key(raw),
            created_at=now,
            expires_at=expires_at,
            org_id=actor.org_id,
        )
        journal = self._store.journal
        changes = journal.diff(None, key, ("name", "prefix", "expires_at"))
        event = journal.event("apiKey.created", actor, actor.org_id, ("apiKey", key.id), changes)
        with journal.recording(event):
            await self._store.create_api_key(key)
        return key, raw

    async def list(self, owner: User | Actor, limit: int, cursor: str | None) -> Page[ApiKey]:
        """The caller's keys in the org it acts in (a site admin across orgs: all its keys)."""
        actor = as_actor(owner)
        return await self._store.list_api_keys(actor.id, actor.scope, limit, cursor)

    async def revoke(self, who: User | Actor, key_id: str) -> None:
        """Revoke one of the actor's keys in its org (an org ADMIN: any key of the org;
        a site admin: anyone's); NotFound otherwise."""
        actor = as_actor(who)
        org_admin = actor.org_role is not None and actor.org_role.at_least(OrgRole.ADMIN)
        user_scope = None if actor.role is Role.ADMIN or org_admin else actor.id
        journal = self._store.journal
        event = journal.event("apiKey.revoked", actor, actor.org_id, ("apiKey", key_id))
        with journal.recording(event):
            revoked = await self._store.revoke_api_key(
                key_id, user_scope, actor.scope, self._clock()
            )
        if revoked is None:
            raise NotFound(f"API key {key_id} not found")
        self._on_revoke(revoked)

    async def authenticate(self, raw: str) -> tuple[Principal, float | None]:
        """The principal of a usable key and the seconds until the key expires (None:
        never); raises InvalidToken for unknown, revoked or expired keys and inactive
        users."""
        key = await self._store.get_api_key_by_hash(hash_key(raw))
        now = self._clock()
        if key is None or not key.usable_at(now):
            raise InvalidToken("the API key is unknown, revoked or expired")
        user = await self._store.get_user(key.user_id)
        if user is None or not user.is_active:
            raise InvalidToken("the API key's user is no longer active")
        if key.last_used_at is None or now - key.last_used_at >= _TOUCH_EVERY:
            # A missed "last used" is not worth refusing the request for.
            with contextlib.suppress(StoreError):
                await self._store.touch_api_key(key.id, now)
        expires_in = None if key.expires_at is None else (key.expires_at - now).total_seconds()
        memberships = tuple(await self._store.memberships(user.id))
        return Principal(user, key.id, memberships, key.org_id), expires_in
