"""Access tokens: what is issued, and everything that is refused. Fake clock, no store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from taskflowd.auth.tokens import AccessTokens, InvalidToken, check_secret, hash_refresh_token
from taskflowd.domain.entities import User
from taskflowd.domain.enums import Role

SECRET = "unit-test-secret-with-more-than-32-bytes"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
USER = User(
    id="u-1",
    email="u@example.com",
    password_hash="x",
    first_name="U",
    last_name="One",
    role=Role.ADMIN,
    is_active=True,
    token_version=3,
    created_at=T0,
    updated_at=T0,
)


def tokens(at: datetime = T0, issuer: str = "tf", audience: str = "tf-api") -> AccessTokens:
    return AccessTokens(SECRET, issuer=issuer, audience=audience, ttl_s=900, clock=lambda: at)


def test_issue_then_decode() -> None:
    now = datetime.now(UTC)
    issuer = tokens(now)
    claims = issuer.decode(issuer.issue(USER))
    assert claims.user_id == "u-1"
    assert claims.role is Role.ADMIN
    assert claims.token_version == 3
    assert claims.expires_at == now.replace(microsecond=0) + timedelta(seconds=900)
    raw = jwt.decode(issuer.issue(USER), options={"verify_signature": False})
    assert raw["typ"] == "access" and raw["iss"] == "tf" and raw["aud"] == "tf-api"
    assert jwt.get_unverified_header(issuer.issue(USER))["alg"] == "HS256"


def test_each_token_has_its_own_id() -> None:
    issuer = tokens(datetime.now(UTC))
    assert issuer.decode(issuer.issue(USER)).token_id != issuer.decode(issuer.issue(USER)).token_id


def test_expired_tokens_are_refused() -> None:
    stale = tokens(datetime.now(UTC) - timedelta(seconds=930))
    with pytest.raises(InvalidToken):
        stale.decode(stale.issue(USER))


def test_leeway_tolerates_small_clock_skew() -> None:
    ahead = tokens(datetime.now(UTC) + timedelta(seconds=2))
    assert ahead.decode(ahead.issue(USER)).user_id == "u-1"


def test_other_issuer_or_audience_is_refused() -> None:
    now = datetime.now(UTC)
    token = tokens(now).issue(USER)
    for other in (tokens(now, issuer="other"), tokens(now, audience="other")):
        with pytest.raises(InvalidToken):
            other.decode(token)


def test_role_and_version_come_from_the_user() -> None:
    issuer = tokens(datetime.now(UTC))
    demoted = dataclasses.replace(USER, role=Role.USER, token_version=4)
    claims = issuer.decode(issuer.issue(demoted))
    assert (claims.role, claims.token_version) == (Role.USER, 4)


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, "é" * 15])
def test_short_secrets_are_rejected(secret: str) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        check_secret(secret)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AccessTokens(secret, issuer="i", audience="a", ttl_s=60)


def test_refresh_hash_is_sha256_hex() -> None:
    digest = hash_refresh_token("raw")
    assert len(digest) == 64 and digest != hash_refresh_token("raw2")
    assert digest == hash_refresh_token("raw")
