"""Access tokens (JWT, HS256 only) and refresh tokens (opaque, stored hashed, rotated).

An access token names its user, role and the user's `token_version`; bumping the version
(password, role or activation change) invalidates every access token issued before.
Refresh tokens are random strings of which only a SHA-256 hash is stored. Each refresh
spends the presented token and issues the next one in the same family; presenting a
spent or revoked token again revokes the whole family (reuse detection).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from taskflowd.audit.model import ActorRef
from taskflowd.domain.entities import RefreshToken, User, utcnow
from taskflowd.domain.enums import Role
from taskflowd.domain.errors import TaskflowError
from taskflowd.store.base import Store

ALGORITHM = "HS256"
ACCESS_TYPE = "access"
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti", "typ", "ver", "role")
MIN_SECRET_BYTES = 32
JWT_SECRET_SETTING = "jwt_secret"  # noqa: S105 - the settings key, not a secret

Clock = Callable[[], datetime]


class InvalidToken(TaskflowError):
    """A token is malformed, forged, expired, revoked or no longer matches its user."""

    code = "invalid_token"


def check_secret(secret: str) -> None:
    """Raise ValueError unless `secret` is long enough for HS256."""
    size = len(secret.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        raise ValueError(
            f"auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes long ({size} given); "
            "leave it empty to have one generated and kept in the database"
        )


async def ensure_jwt_secret(store: Store, configured: str) -> str:
    """The secret to sign with: the configured one, else one generated once per database.

    Every node of a cluster sharing the database gets the same generated secret.
    """
    if configured:
        check_secret(configured)
        return configured
    secret = await store.put_setting_if_absent(JWT_SECRET_SETTING, secrets.token_urlsafe(48))
    check_secret(secret)
    return secret


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    role: Role
    token_version: int
    token_id: str
    expires_at: datetime


class AccessTokens:
    """Issues and checks HS256 access tokens for one issuer and audience."""

    def __init__(
        self,
        secret: str,
        *,
        issuer: str,
        audience: str,
        ttl_s: int,
        clock: Clock = utcnow,
        leeway_s: float = 5.0,
    ) -> None:
        check_secret(secret)
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self._clock = clock
        self._leeway_s = leeway_s
        self._loaded = False

    async def load(self) -> None:
        """Import PyJWT, and the cryptography it loads (~8 MB), off the event loop on the
        first call: a node that never meets a token never loads them. `issue` and `decode`
        work without it (they import it themselves), but then on the caller's thread."""
        if not self._loaded:
            await asyncio.to_thread(importlib.import_module, "jwt")
            self._loaded = True

    def issue(self, user: User) -> str:
        now = self._clock()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.id,
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=self.ttl_s),
            "jti": uuid.uuid4().hex,
            "typ": ACCESS_TYPE,
            "ver": user.token_version,
            "role": user.role.value,
        }
        import jwt  # see load()

        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> AccessClaims:
        """The claims of a valid access token; raises InvalidToken for anything else."""
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway_s,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidTokenError:
            raise InvalidToken("the access token is invalid or expired") from None
        return _access_claims(claims)


def _access_claims(claims: dict[str, Any]) -> AccessClaims:
    sub, ver, role, jti = claims["sub"], claims["ver"], claims["role"], claims["jti"]
    if claims["typ"] != ACCESS_TYPE:
        raise InvalidToken("the token is not an access token")
    if not isinstance(sub, str) or not isinstance(jti, str):
        raise InvalidToken("the token's sub and jti must be strings")
    if isinstance(ver, bool) or not isinstance(ver, int):
        raise InvalidToken("the token's ver must be an integer")
    if role not in Role.__members__:
        raise InvalidToken("the token names an unknown role")
    expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    return AccessClaims(sub, Role(role), ver, jti, expires_at)


def hash_refresh_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of a refresh: whose token it was and the next token of the family."""

    user_id: str
    family_id: str
    refresh_token: str


class RefreshTokens:
    """Refresh tokens in the store: issue, rotate with reuse detection, revoke."""

    def __init__(self, store: Store, ttl_s: int, clock: Clock = utcnow) -> None:
        self._store = store
        self.ttl_s = ttl_s
        self._clock = clock

    async def issue(self, user_id: str, family_id: str | None = None) -> str:
        """A new raw token; a new family unless `family_id` continues one."""
        raw = secrets.token_urlsafe(32)
        now = self._clock()
        await self._store.add_refresh_token(
            RefreshToken(
                id=str(uuid.uuid4()),
                user_id=user_id,
                token_hash=hash_refresh_token(raw),
                family_id=family_id or str(uuid.uuid4()),
                expires_at=now + timedelta(seconds=self.ttl_s),
                created_at=now,
            )
        )
        return raw

    async def rotate(self, raw: str) -> Rotation:
        """Spend `raw` and issue its successor; a replayed token revokes its whole family.

        Raises InvalidToken for unknown, expired, spent or revoked tokens.
        """
        token = await self._store.get_refresh_token(hash_refresh_token(raw))
        if token is None:
            raise InvalidToken("the refresh token is unknown")
        now = self._clock()
        if token.used_at is not None or token.revoked_at is not None:
            await self._replayed(token)
        if token.expires_at <= now:
            raise InvalidToken("the refresh token has expired")
        journal = self._store.journal
        target = ("user", token.user_id)
        actor = await self._owner(token)
        event = journal.event("auth.token_refreshed", None, None, target, actor=actor)
        with journal.recording(event):
            spent_now = await self._store.spend_refresh_token(token.id, now)
        if not spent_now:
            await self._replayed(token)
        successor = await self.issue(token.user_id, token.family_id)
        # A concurrent replay may have revoked the family before the successor existed;
        # the spent token then carries the revocation, and the successor must go too.
        spent = await self._store.get_refresh_token(token.token_hash)
        if spent is None or spent.revoked_at is not None:
            await self._replayed(token)
        return Rotation(token.user_id, token.family_id, successor)

    async def _replayed(self, token: RefreshToken) -> NoReturn:
        journal = self._store.journal
        event = journal.event(
            "auth.refresh_reuse_detected",
            None,
            None,
            ("user", token.user_id),
            {"tokenFamily": [token.family_id, None]},
            actor=await self._owner(token),
        )
        with journal.recording(event) as recording:
            await self._store.revoke_token_family(token.family_id, self._clock())
        if not recording.written:  # the family was revoked already: still worth a record
            await journal.write(event)
        raise InvalidToken("the refresh token was already used; its family is revoked")

    async def _owner(self, token: RefreshToken) -> ActorRef:
        """The token's user as the actor of an audit event."""
        user = await self._store.get_user(token.user_id)
        return ActorRef("user", token.user_id, user.email if user else None)

    async def is_live(self, raw: str) -> bool:
        """Whether `raw` could still be spent: known, unused, unrevoked (expiry aside)."""
        token = await self._store.get_refresh_token(hash_refresh_token(raw))
        return token is not None and token.used_at is None and token.revoked_at is None

    async def revoke(self, raw: str, *, record: bool = True) -> None:
        """Revoke the family of `raw` (log out), recorded as `auth.logout` unless not
        `record`; an unknown token is ignored."""
        token = await self._store.get_refresh_token(hash_refresh_token(raw))
        if token is None:
            return
        if not record:
            await self._store.revoke_token_family(token.family_id, self._clock())
            return
        journal = self._store.journal
        actor = await self._owner(token)
        event = journal.event("auth.logout", None, None, ("user", token.user_id), actor=actor)
        with journal.recording(event) as recording:
            await self._store.revoke_token_family(token.family_id, self._clock())
        if not recording.written:  # the session had ended already: the request counts
            await journal.write(event)

    async def revoke_family(self, family_id: str) -> None:
        await self._store.revoke_token_family(family_id, self._clock())

    async def revoke_user(self, user_id: str) -> None:
        await self._store.revoke_user_tokens(user_id, self._clock())
