"""Dashboard sessions, CSRF tokens and flash messages, all in signed cookies.

A session cookie names the user, the user's `token_version` when the session began, a
random session id and two expiry times (idle and absolute), signed with HMAC-SHA256
under a key derived from the JWT secret. Nothing is kept on the server except the ids
of sessions that logged out (bounded, until they expire), so sessions survive a restart
and work on every node of a cluster. Every request re-reads the user: a deactivated
user, or one whose password or role changed (`token_version` bumped), is signed out.

The CSRF token of a session is derived from its id, so it needs no storage either; the
login form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

SESSION_COOKIE = "taskflowd_session"
LOGIN_COOKIE = "taskflowd_login"
FLASH_COOKIE = "taskflowd_flash"
IDLE_TTL_S = 8 * 3600
ABSOLUTE_TTL_S = 7 * 86400
MAX_COOKIE_CHARS = 2048
MAX_FLASH_CHARS = 300
FLASH_LINK_PREFIX = "/dashboard/"
_KEY_LABEL = b"taskflowd.dashboard.session.v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A verified session cookie; the user it names still has to be checked."""

    user_id: str
    token_version: int
    session_id: str
    issued_at: int
    expires_at: int

    def due_for_renewal(self, now: float) -> bool:
        """Past half of its idle lifetime: worth re-issuing to slide the expiry."""
        return self.expires_at - now < IDLE_TTL_S / 2


@dataclass(frozen=True, slots=True)
class Flash:
    """A message for the next page: `kind` is "ok" or "error"; `link` an optional
    (dashboard path, text) shown after the message."""

    kind: str
    text: str
    link: tuple[str, str] | None = None


class Signer:
    """HMAC-SHA256 over JSON documents; `load` answers None for anything not signed here."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def dump(self, purpose: str, data: Any) -> str:
        body = _b64(orjson.dumps(data))
        return f"{body}.{self._mac(purpose, body)}"

    def load(self, purpose: str, value: str | None) -> Any:
        if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            return orjson.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None

    def _mac(self, purpose: str, body: str) -> str:
        message = f"{purpose}:{body}".encode("ascii")
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def token(self, purpose: str, value: str) -> str:
        """A deterministic token bound to `value` (a CSRF token for a session id)."""
        return self._mac(purpose, _b64(value.encode("utf-8")))


class Sessions:
    """Issues and checks session cookies, CSRF tokens and flash messages."""

    def __init__(
        self,
        jwt_secret: str,
        clock: Callable[[], float] = time.time,
        max_revoked: int = 100_000,
    ) -> None:
        key = hmac.new(jwt_secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
        self._signer = Signer(key)
        self._clock = clock
        self._max_revoked = max_revoked
        self._revoked: OrderedDict[str, int] = OrderedDict()

    def now(self) -> float:
        return self._clock()

    # --- sessions ------------------------------------------------------------------
    def issue(self, user_id: str, token_version: int, previous: Session | None = None) -> str:
        """A session cookie value; renewing `previous` keeps its id and absolute limit."""
        now = int(self._clock())
        if previous is None:
            session_id, issued_at = secrets.token_urlsafe(18), now
        else:
            session_id, issued_at = previous.session_id, previous.issued_at
        expires_at = min(now + IDLE_TTL_S, issued_at + ABSOLUTE_TTL_S)
        data = {"u": user_id, "v": token_version, "s": session_id, "i": issued_at, "e": expires_at}
        return self._signer.dump("session", data)

    def verify(self, value: str | None) -> Session | None:
        """The session of a cookie value that is authentic, unexpired and not logged out."""
        data = self._signer.load("session", value)
        if not isinstance(data, dict):
            return None
        try:
            session = Session(
                str(data["u"]), int(data["v"]), str(data["s"]), int(data["i"]), int(data["e"])
            )
        except (KeyError, TypeError, ValueError):
            return None
        if session.expires_at <= self._clock() or session.session_id in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        """Log a session out on this node (the cookie is cleared too)."""
        now = self._clock()
        while self._revoked:
            oldest_id, oldest_expiry = next(iter(self._revoked.items()))
            if oldest_expiry > now and len(self._revoked) < self._max_revoked:
                break
            del self._revoked[oldest_id]
        self._revoked[session.session_id] = session.expires_at

    # --- CSRF ----------------------------------------------------------------------
    def csrf_token(self, session: Session) -> str:
        return self._signer.token("csrf", session.session_id)

    def check_csrf(self, session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given), self.csrf_token(session))

    @staticmethod
    def new_login_token() -> str:
        return secrets.token_urlsafe(24)

    # --- flash messages ------------------------------------------------------------
    def flash(self, kind: str, text: str, link: tuple[str, str] | None = None) -> str:
        data: dict[str, Any] = {"k": kind, "t": text[:MAX_FLASH_CHARS]}
        if link is not None:
            data["l"] = [link[0][:MAX_FLASH_CHARS], link[1][:MAX_FLASH_CHARS]]
        return self._signer.dump("flash", data)

    def read_flash(self, value: str | None) -> Flash | None:
        data = self._signer.load("flash", value)
        if not isinstance(data, dict):
            return None
        kind, text, link = data.get("k"), data.get("t"), data.get("l")
        if kind not in ("ok", "error") or not isinstance(text, str):
            return None
        if (
            isinstance(link, list)
            and len(link) == 2
            and all(isinstance(part, str) for part in link)
            and link[0].startswith(FLASH_LINK_PREFIX)
        ):
            return Flash(kind, text, (link[0], link[1]))
        return Flash(kind, text)
