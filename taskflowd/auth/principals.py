"""Who a request acts as, and a per-node cache of that answer.

Authenticating a bearer credential costs a signature check (JWT) or a hash, and a
database read of the user. The cache keeps the answer per credential for at most
`ttl_s` (and never past the credential's own expiry), and forgets it at once when the
user or the key changes: the services publish a `principal` event for every change
that can end access (deactivation, role or password change, deletion, key revocation,
an org membership or org role that changes or ends), and the event bridge carries it to
every node. The TTL bounds staleness even when an
event is lost or a change bypassed the services (the CLI writing the database).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskflowd.domain.entities import User
from taskflowd.domain.orgs import Membership

PRINCIPAL_EVENT = "principal"
"""Event kind: data `userId` and/or `apiKeyId` whose cached principals must go."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a user, through a session token or one of its API keys (which acts
    in `key_org_id`), with the user's org memberships."""

    user: User
    api_key_id: str | None = None
    memberships: tuple[Membership, ...] = ()
    key_org_id: str | None = None

    def membership(self, org: str) -> Membership | None:
        """The user's place in the org with id or slug `org`; None when not a member."""
        for found in self.memberships:
            if org in (found.org_id, found.slug):
                return found
        return None


@dataclass(slots=True)
class _Entry:
    principal: Principal
    valid_until: float


class PrincipalCache:
    """Principals by credential, bounded in size and age; safe to disable (`ttl_s` 0)."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, credential: str) -> Principal | None:
        entry = self._entries.get(credential)
        if entry is None:
            return None
        if entry.valid_until <= self._clock():
            del self._entries[credential]
            return None
        return entry.principal

    def put(self, credential: str, principal: Principal, expires_in_s: float | None) -> None:
        """Keep `principal` for `credential` for the TTL, or less when the credential
        itself expires in `expires_in_s`."""
        if self.ttl_s <= 0:
            return
        life = self.ttl_s if expires_in_s is None else min(self.ttl_s, expires_in_s)
        if life <= 0:
            return
        self._entries[credential] = _Entry(principal, self._clock() + life)
        self._entries.move_to_end(credential)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, user_id: str | None = None, api_key_id: str | None = None) -> int:
        """Drop every principal of `user_id` and every one using `api_key_id`."""
        doomed = [
            credential
            for credential, entry in self._entries.items()
            if (user_id is not None and entry.principal.user.id == user_id)
            or (api_key_id is not None and entry.principal.api_key_id == api_key_id)
        ]
        for credential in doomed:
            del self._entries[credential]
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()

    def on_event(self, data: dict[str, Any]) -> None:
        """Apply a `principal` event's data."""
        user_id = data.get("userId")
        key_id = data.get("apiKeyId")
        self.forget(
            user_id if isinstance(user_id, str) else None,
            key_id if isinstance(key_id, str) else None,
        )
