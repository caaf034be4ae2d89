"""Accounts and sessions: registration, login, token refresh, and user administration.

Login answers every failure (unknown email, wrong password, inactive account) with the
same error after the same amount of bcrypt work. Changing a user's password, role or
activation bumps its `token_version` and revokes its refresh tokens, so every session
issued before ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from taskflowd.audit.model import ActorRef, AuditEvent
from taskflowd.auth.api_keys import ApiKeys, is_api_key
from taskflowd.auth.emails import normalize_email
from taskflowd.auth.passwords import MAX_PASSWORD_BYTES, PasswordHasher, password_problems
from taskflowd.auth.principals import PRINCIPAL_EVENT, Principal, PrincipalCache
from taskflowd.auth.tokens import AccessTokens, Clock, InvalidToken, RefreshTokens
from taskflowd.config import AuthSettings
from taskflowd.domain.entities import ApiKey, User, utcnow
from taskflowd.domain.enums import Role
from taskflowd.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    TaskflowError,
    ValidationFailed,
)
from taskflowd.events import EventBus
from taskflowd.joined import Joined
from taskflowd.store.base import Page, Store
from taskflowd.store.errors import DuplicateKey

DEFAULT_ADMIN_EMAIL = "admin@localhost"
MAX_NAME_LENGTH = 100
_BAD_LOGIN = "Invalid email or password."
_USER_FIELDS = ("email", "first_name", "last_name", "role", "is_active", "password_hash")
"""User fields whose changes the audit trail records (the password hash only as redacted)."""


class InvalidCredentials(TaskflowError):
    """Login failed; deliberately says nothing about which part was wrong."""

    code = "invalid_credentials"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class NewUser:
    email: str
    password: str
    first_name: str
    last_name: str
    role: Role = Role.USER
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class UserChanges:
    """A partial update; None leaves a field as it is."""

    role: Role | None = None
    is_active: bool | None = None
    first_name: str | None = None
    last_name: str | None = None


def _new_user_problems(new: NewUser) -> tuple[str, list[FieldError]]:
    problems: list[FieldError] = []
    try:
        email = normalize_email(new.email)
    except ValueError as exc:
        email, problems = new.email, [FieldError("email", str(exc))]
    problems.extend(password_problems(new.password))
    for field, value in (("firstName", new.first_name), ("lastName", new.last_name)):
        problems.extend(_name_problems(field, value))
    return email, problems


def _name_problems(field: str, value: str) -> list[FieldError]:
    if not value.strip() or len(value) > MAX_NAME_LENGTH:
        return [FieldError(field, f"must be 1 to {MAX_NAME_LENGTH} characters, not blank")]
    return []


def _name_or(current: str, given: str | None) -> str:
    return current if given is None else given.strip()


class AuthService:
    """Everything about users and their tokens; the API and the CLI both go through it."""

    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        settings: AuthSettings,
        jwt_secret: str,
        clock: Clock = utcnow,
        events: EventBus | None = None,
    ) -> None:
        self._store = store
        self._journal = store.journal
        self._hasher = hasher
        self.settings = settings
        self._clock = clock
        self.events = events or EventBus()
        self.principals = PrincipalCache(settings.principal_cache_ttl_s)
        self._lookups: Joined[Principal] = Joined()
        self._principal_events = 0
        self.events.on(PRINCIPAL_EVENT, self._principal_changed)
        self.api_keys = ApiKeys(store, self._key_revoked, clock)
        self._access = AccessTokens(
            jwt_secret,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl_s=settings.access_token_ttl_s,
            clock=clock,
        )
        self._refresh = RefreshTokens(store, settings.refresh_token_ttl_s, clock)

    # --- accounts --------------------------------------------------------------
    async def register(self, new: NewUser) -> User:
        """Self-service sign-up: always role USER; Forbidden when registration is closed."""
        if not self.settings.allow_registration:
            raise Forbidden("Registration is disabled on this server; ask an administrator.")
        signup = dataclasses.replace(new, role=Role.USER, is_active=True)
        return await self.create_user(signup, action="user.registered")

    async def create_user(
        self, new: NewUser, actor: User | None = None, *, action: str = "user.created"
    ) -> User:
        """Create an account (by `actor`, None: the system or the new user itself for
        `user.registered`); Conflict when a live account has the email."""
        email, problems = _new_user_problems(new)
        if problems:
            raise ValidationFailed(problems)
        if await self._store.get_user_by_email(email) is not None:
            raise Conflict("An account with this email already exists.")
        now = self._clock()
        user = User(
            id=str(uuid.uuid4()),
            email=email,
            password_hash=await self._hasher.hash(new.password),
            first_name=new.first_name.strip(),
            last_name=new.last_name.strip(),
            role=new.role,
            is_active=new.is_active,
            token_version=0,
            created_at=now,
            updated_at=now,
        )
        who = user if action == "user.registered" else actor
        changes = self._journal.diff(None, user, _USER_FIELDS)
        event = self._journal.event(action, who, None, ("user", user.id), changes)
        try:
            with self._journal.recording(event):
                return await self._store.create_user(user)
        except DuplicateKey:
            raise Conflict("An account with this email already exists.") from None

    async def get_user(self, user_id: str) -> User:
        user = await self._store.get_user(user_id)
        if user is None:
            raise NotFound("No user has this id.")
        return user

    async def list_users(self, limit: int, cursor: str | None = None) -> Page[User]:
        return await self._store.list_users(limit, cursor)

    async def update_user(self, actor: User, user_id: str, changes: UserChanges) -> User:
        """Apply an administrator's changes; nobody changes their own role or activation."""
        user = await self.get_user(user_id)
        if actor.id == user.id:
            if changes.role is not None and changes.role != user.role:
                raise Forbidden("You cannot change your own role; ask another administrator.")
            if changes.is_active is False:
                raise Forbidden("You cannot deactivate yourself; ask another administrator.")
        names = (("firstName", changes.first_name), ("lastName", changes.last_name))
        problems = [p for f, v in names if v is not None for p in _name_problems(f, v)]
        if problems:
            raise ValidationFailed(problems)
        role = user.role if changes.role is None else changes.role
        is_active = user.is_active if changes.is_active is None else changes.is_active
        revoke = role != user.role or is_active != user.is_active
        updated = dataclasses.replace(
            user,
            role=role,
            is_active=is_active,
            first_name=_name_or(user.first_name, changes.first_name),
            last_name=_name_or(user.last_name, changes.last_name),
            token_version=user.token_version + (1 if revoke else 0),
            updated_at=self._clock(),
        )
        if role != user.role:
            action = "user.role_changed"
        elif is_active != user.is_active:
            action = "user.activated" if is_active else "user.deactivated"
        else:
            action = "user.updated"
        diff = self._journal.diff(user, updated, _USER_FIELDS)
        event = self._journal.event(action, actor, None, ("user", user.id), diff)
        return await self._save(updated, event, revoke_sessions=revoke)

    async def delete_user(self, actor: User, user_id: str) -> None:
        """Soft-delete an account and end its sessions; nobody deletes themselves."""
        if actor.id == user_id:
            raise Forbidden("You cannot delete your own account; ask another administrator.")
        event = self._journal.event("user.deleted", actor, None, ("user", user_id))
        with self._journal.recording(event):
            deleted = await self._store.delete_user(user_id, self._clock())
        if not deleted:
            raise NotFound("No user has this id.")
        await self._refresh.revoke_user(user_id)
        self.events.publish(PRINCIPAL_EVENT, userId=user_id)

    async def change_password(self, user: User, current: str, new: str) -> None:
        """Replace the caller's password after checking the current one; ends all sessions."""
        problems = password_problems(new, "newPassword")
        if problems:
            raise ValidationFailed(problems)
        if not await self._hasher.verify(current, user.password_hash):
            raise ValidationFailed([FieldError("currentPassword", "is not your current password")])
        updated = dataclasses.replace(
            user,
            password_hash=await self._hasher.hash(new),
            token_version=user.token_version + 1,
            updated_at=self._clock(),
        )
        changes = self._journal.diff(user, updated, ("password_hash",))
        event = self._journal.event("user.password_changed", user, None, ("user", user.id), changes)
        await self._save(updated, event, revoke_sessions=True)

    async def _save(self, user: User, event: AuditEvent, *, revoke_sessions: bool) -> User:
        """Write `user`; sessions are revoked first so a concurrent refresh cannot slip a
        token of the new version past the revocation."""
        if revoke_sessions:
            await self._refresh.revoke_user(user.id)
        with self._journal.recording(event):
            saved = await self._store.update_user(user)
        if saved is None:
            raise NotFound("No user has this id.")
        # Cached principals on every node hold the old role and activation: end them.
        self.events.publish(PRINCIPAL_EVENT, userId=user.id)
        return saved

    def _key_revoked(self, key: ApiKey) -> None:
        self.events.publish(PRINCIPAL_EVENT, apiKeyId=key.id, userId=key.user_id)

    # --- sessions --------------------------------------------------------------
    async def login(self, email: str, password: str) -> TokenPair:
        """A new session; InvalidCredentials, identical in every case, when refused."""
        email = email.strip().lower()
        user = await self._store.get_user_by_email(email)
        matches = await self._hasher.verify(password, user.password_hash if user else None)
        too_long = len(password.encode("utf-8")) > MAX_PASSWORD_BYTES
        if user is None or not user.is_active or too_long or not matches:
            reason = "unknown email" if user is None else "refused"
            actor = ActorRef("user", user.id if user else None, email[:320])
            target = ("user", user.id if user else None)
            await self._journal.write(
                self._journal.event(
                    "auth.login_failed", None, None, target, {"reason": [None, reason]}, actor=actor
                )
            )
            raise InvalidCredentials(_BAD_LOGIN)
        event = self._journal.event("auth.login", user, None, ("user", user.id))
        with self._journal.recording(event):
            return await self._pair(user, family_id=None)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spend a refresh token for a new pair in its family (see `RefreshTokens.rotate`)."""
        rotation = await self._refresh.rotate(refresh_token)
        user = await self._store.get_user(rotation.user_id)
        # Sessions are revoked before a user changes (see `_save`): if the user read here
        # is already the changed one, the successor token has been revoked by now.
        if (
            user is None
            or not user.is_active
            or not await self._refresh.is_live(rotation.refresh_token)
        ):
            await self._refresh.revoke_family(rotation.family_id)
            raise InvalidToken("the session of this refresh token has ended")
        await self._access.load()
        return TokenPair(
            access_token=self._access.issue(user),
            refresh_token=rotation.refresh_token,
            expires_in_s=self._access.ttl_s,
        )

    async def logout(self, refresh_token: str, *, record: bool = True) -> None:
        """End the session (token family) of a refresh token; unknown tokens are ignored.
        `record=False` for a session its opener discards at once (the dashboard's)."""
        await self._refresh.revoke(refresh_token, record=record)

    async def signed_out(self, user: User) -> None:
        """Record that `user` ended a session kept elsewhere (the dashboard's cookie)."""
        event = self._journal.event("auth.logout", user, None, ("user", user.id))
        await self._journal.write(event)

    async def authenticate(self, credential: str) -> Principal:
        """The caller of a bearer credential: an API key (`tfk_…`) that is usable, or a
        valid access token whose user is live, active and of the token's version.
        Raises InvalidToken otherwise. Answers come from the principal cache when they
        can (see `taskflowd.auth.principals`); requests that miss it together share one
        look-up (a flood of them would otherwise read the key or user each, every time
        its cached principal expires), one begun less than the cache's TTL ago: what it
        read is no older than a cached principal could be (none with the cache off)."""
        cached = self.principals.get(credential)
        if cached is not None:
            return cached
        lookup = self._lookups.under_way(credential, self.principals.ttl_s)
        if lookup is None:
            lookup = self._lookups.start(credential, self._look_up(credential))
        return await asyncio.shield(lookup)

    async def _look_up(self, credential: str) -> Principal:
        events = self._principal_events
        if is_api_key(credential):
            principal, expires_in = await self.api_keys.authenticate(credential)
        else:
            await self._access.load()
            claims = self._access.decode(credential)
            user = await self._store.get_user(claims.user_id)
            if user is None or not user.is_active or user.token_version != claims.token_version:
                raise InvalidToken("the access token is no longer valid")
            principal = Principal(user, memberships=tuple(await self._store.memberships(user.id)))
            expires_in = (claims.expires_at - self._clock()).total_seconds()
        if events == self._principal_events:  # what it read may predate a change told since
            self.principals.put(credential, principal, expires_in)
        return principal

    def _principal_changed(self, data: dict[str, Any]) -> None:
        """A `principal` event: forget the cached principals it names, and let the next
        request look up afresh rather than join a look-up that began before it."""
        self._principal_events += 1
        self._lookups.forget()
        self.principals.on_event(data)

    async def me(self, user: User) -> User:
        """The caller's account as stored now."""
        return await self.get_user(user.id)

    async def _pair(self, user: User, family_id: str | None) -> TokenPair:
        await self._access.load()
        return TokenPair(
            access_token=self._access.issue(user),
            refresh_token=await self._refresh.issue(user.id, family_id),
            expires_in_s=self._access.ttl_s,
        )


async def ensure_admin(
    store: Store, hasher: PasswordHasher, email: str, password: str
) -> tuple[User, str | None] | None:
    """On first start (no users at all) create an ADMIN; None when users exist already.

    An empty `email` means `admin@localhost`; an empty `password` is generated and
    returned so the caller can show it once. Raises ValueError for an unusable email or
    password, naming the setting.
    """
    if await store.count_users() > 0:
        return None
    try:
        email = normalize_email(email or DEFAULT_ADMIN_EMAIL)
    except ValueError as exc:
        raise ValueError(f"admin_email {exc}") from None
    generated: str | None = None
    if not password:
        password = generated = secrets.token_urlsafe(18)
    problems = password_problems(password, "admin_password")
    if problems:
        raise ValueError(f"admin_password {problems[0].message}")
    now = utcnow()
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        password_hash=await hasher.hash(password),
        first_name="Admin",
        last_name="",
        role=Role.ADMIN,
        is_active=True,
        token_version=0,
        created_at=now,
        updated_at=now,
    )
    journal = store.journal
    changes = journal.diff(None, user, _USER_FIELDS)
    event = journal.event("user.created", None, None, ("user", user.id), changes)
    try:
        with journal.recording(event):
            await store.create_user(user)
    except DuplicateKey:
        return None
    return user, generated
