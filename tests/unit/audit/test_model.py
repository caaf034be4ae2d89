"""The audit event's rules without a database: the hash chain checked against an
independent computation, redaction of secrets at any depth, and field diffs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime

from taskflowd.audit.model import (
    GENESIS_HASH,
    REDACTED,
    ActorRef,
    AuditEvent,
    diff,
    jsonable,
)
from taskflowd.domain.enums import Role

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def event(**changes: object) -> AuditEvent:
    return AuditEvent(**{**_fields(), **changes})  # type: ignore[arg-type]


def _fields() -> dict[str, object]:
    return {
        "action": "task.updated",
        "actor": ActorRef("user", "u1", "ada@example.com"),
        "org_id": "o1",
        "target_type": "task",
        "target_id": "t1",
        "changes": {"name": ["a", "b"]},
        "request_id": "r1",
        "ip": "127.0.0.1",
        "user_agent": "ua",
        "id": "e1",
        "at": AT,
    }


def test_the_hash_is_sha256_of_the_previous_hash_and_the_canonical_event() -> None:
    first = event().chained(GENESIS_HASH)
    document = {
        "action": "task.updated",
        "actor": {"email": "ada@example.com", "id": "u1", "type": "user"},
        "at": "2026-03-01T12:00:00.123456+00:00",
        "changes": {"name": ["a", "b"]},
        "id": "e1",
        "ip": "127.0.0.1",
        "orgId": "o1",
        "requestId": "r1",
        "target": {"id": "t1", "type": "task"},
        "userAgent": "ua",
    }
    canonical = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    expected = hashlib.sha256(GENESIS_HASH.encode() + b"\n" + canonical).hexdigest()
    assert (first.prev_hash, first.hash) == (GENESIS_HASH, expected)
    second = event(id="e2").chained(first.hash)
    assert second.prev_hash == first.hash and second.hash != first.hash


def test_any_change_of_a_field_changes_the_hash() -> None:
    base = event().chained(GENESIS_HASH).hash
    for change in (
        {"action": "task.deleted"},
        {"changes": {"name": ["a", "c"]}},
        {"ip": "10.0.0.1"},
        {"at": AT.replace(microsecond=0)},
        {"actor": ActorRef("apiKey", "u1", "ada@example.com")},
    ):
        assert event(**change).chained(GENESIS_HASH).hash != base, change
    assert dataclasses.replace(event(), at=AT.astimezone()).chained(GENESIS_HASH).hash == base


def test_secrets_are_redacted_at_any_depth() -> None:
    payload = {
        "url": "https://example.com",
        "headers": {"Authorization": "Bearer x", "X-Api-Key": "k", "Accept": "json"},
        "nested": [{"password": "p", "client_secret": "s", "refresh_token": "t"}],
    }
    assert jsonable(payload) == {
        "url": "https://example.com",
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "json"},
        "nested": [{"password": REDACTED, "client_secret": REDACTED, "refresh_token": REDACTED}],
    }


def test_diff_names_changed_fields_in_camel_case() -> None:
    before = {"name": "a", "max_retries": 1, "role": Role.USER, "password_hash": "$2b$x"}
    after = {"name": "a", "max_retries": 3, "role": Role.ADMIN, "password_hash": "$2b$y"}
    assert diff(before, after) == {
        "maxRetries": [1, 3],
        "role": ["USER", "ADMIN"],
        "passwordHash": [REDACTED, REDACTED],
    }
    created = diff(None, {"payload": {"a": 1}, "at": AT}, sealed=frozenset({"payload"}))
    assert created == {
        "payload": [None, REDACTED],
        "at": [None, "2026-03-01T12:00:00.123456+00:00"],
    }
