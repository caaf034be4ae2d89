"""Audit events and the rules of their hash chain; no I/O.

An event's hash is SHA-256 over the previous event's hash, a newline and the event's
canonical JSON (keys sorted, no spaces, UTF-8), so changing, removing or reordering any
stored event breaks every link after it. The first event follows `GENESIS_HASH`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

GENESIS_HASH = "0" * 64
REDACTED = "[redacted]"
ActorType = Literal["user", "apiKey", "system"]

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
"""Integers canonical JSON writes as numbers; larger ones are kept as text."""
_SECRET_WORDS = ("password", "secret", "token", "keyhash", "apikey", "authorization", "cookie")
_SECRET_NAMES = frozenset({"key", "rawkey", "privatekey", "signingkey", "encryptionkeys"})


@dataclass(frozen=True, slots=True)
class ActorRef:
    """Who acted: a user (`id` the user's), an API key (`id` the key's, `email` its
    user's), or the system itself (no id)."""

    type: ActorType
    id: str | None = None
    email: str | None = None


SYSTEM = ActorRef("system")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a change came from: the request it was made in, when there was one."""

    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    api_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One recorded change. `prev_hash` and `hash` are set when the event joins the chain."""

    action: str
    actor: ActorRef
    org_id: str | None
    target_type: str | None
    target_id: str | None
    changes: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    prev_hash: str = ""
    hash: str = ""

    def document(self) -> dict[str, Any]:
        """The event's fields as hashed (everything but the chain's own hashes)."""
        a = self.actor
        return hashed_document(
            (self.id, format_time(self.at), a.type, a.id, a.email, self.org_id, self.action),
            (self.target_type, self.target_id, self.changes),
            (self.request_id, self.ip, self.user_agent),
        )

    def to_json(self) -> dict[str, Any]:
        """The event as the API shows it."""
        return {**self.document(), "prevHash": self.prev_hash, "hash": self.hash}

    def chained(self, prev_hash: str) -> AuditEvent:
        """This event as the link after `prev_hash`."""
        return dataclasses.replace(self, prev_hash=prev_hash, hash=chain_hash(prev_hash, self))


def format_time(at: datetime) -> str:
    """A stable ISO 8601 form (UTC, microseconds) so a stored time hashes the same."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(document: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8 (as `json.dumps(…, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)` writes plain data)."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def hashed_document(
    who: tuple[str, str, str, str | None, str | None, str | None, str],
    what: tuple[str | None, str | None, Mapping[str, Any]],
    origin: tuple[str | None, str | None, str | None],
) -> dict[str, Any]:
    """An event's document from its stored values: (id, `format_time` of `at`, actor
    type, id and email, org id, action), (target type and id, changes), (request id, ip,
    user agent). `AuditEvent.document` and the chain's verification both build it here."""
    event_id, at, actor_type, actor_id, actor_email, org_id, action = who
    target_type, target_id, changes = what
    request_id, ip, user_agent = origin
    return {
        "id": event_id,
        "at": at,
        "actor": {"type": actor_type, "id": actor_id, "email": actor_email},
        "orgId": org_id,
        "action": action,
        "target": {"type": target_type, "id": target_id},
        "changes": dict(changes),
        "requestId": request_id,
        "ip": ip,
        "userAgent": user_agent,
    }


def link_hash(prev_hash: str, document: dict[str, Any]) -> str:
    """SHA-256 over the previous hash, a newline and the document's canonical JSON."""
    digest = hashlib.sha256(prev_hash.encode("ascii") + b"\n")
    digest.update(canonical(document))
    return digest.hexdigest()


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return link_hash(prev_hash, event.document())


@functools.lru_cache(maxsize=4096)
def is_secret(name: str) -> bool:
    """Whether a field of this name holds a secret (passwords, their hashes, key and
    webhook secrets, tokens, credentials in headers)."""
    folded = name.replace("_", "").replace("-", "").lower()
    return folded in _SECRET_NAMES or any(word in folded for word in _SECRET_WORDS)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data (times as ISO strings, enums as their values), with
    every secret-named field at any depth redacted."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret(str(k)) else jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    return str(value)


@functools.lru_cache(maxsize=1024)
def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def diff(
    before: Any,
    after: Any,
    fields: tuple[str, ...] | None = None,
    *,
    sealed: frozenset[str] = frozenset(),
) -> dict[str, list[Any]]:
    """`{field: [before, after]}` of the fields (camelCase) that differ between two records
    (dataclasses or mappings; either may be None for a creation or deletion). Secret
    fields show as redacted; fields in `sealed` (stored encrypted) are never shown."""
    old = _fields(before)
    new = _fields(after)
    names = fields if fields is not None else tuple(dict.fromkeys((*old, *new)))
    changes: dict[str, list[Any]] = {}
    for name in names:
        was, now = old.get(name), new.get(name)
        if was == now:
            continue
        key = camel(name)
        if is_secret(name) or name in sealed:
            changes[key] = [
                REDACTED if was is not None else None,
                REDACTED if now is not None else None,
            ]
        else:
            changes[key] = [jsonable(was), jsonable(now)]
    return changes


def _fields(record: Any) -> dict[str, Any]:
    if record is None:
        return {}
    if isinstance(record, Mapping):
        return dict(record)
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
