"""Audit events in SQL: filtered pages, the whole chain in order (export, verify), and
pruning that keeps the chain verifiable through a checkpoint."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import orjson

from taskflowd.audit.model import ActorRef, AuditEvent, format_time, hashed_document, link_hash
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.store.base import Page
from taskflowd.store.db import Conn, Database, Row

_COLUMNS = (
    "seq, id, at, actor_type, actor_id, actor_email, org_id, action, target_type, target_id, "
    "changes, request_id, ip, user_agent, prev_hash, hash"
)
_CHAIN = "SELECT seq, hash, pruned_seq, pruned_hash FROM audit_chain WHERE id = 1"
VERIFY_BATCH = 5000


@dataclass(frozen=True, slots=True)
class AuditFilter:
    org_id: str | None = None
    action: str | None = None
    actor_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """The first event at which the chain does not hold, and why."""

    position: int
    event_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    checked: int
    first_position: int
    """Where verification started: the first event after the pruning checkpoint."""
    broken: BrokenLink | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"audit|{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, seq = raw.split("|", 1)
        if tag == "audit" and seq.isdigit():
            return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise ValidationFailed([FieldError("cursor", "the cursor is not one this server issued")])


def event_from_row(row: Row, db: Database) -> AuditEvent:
    return AuditEvent(
        action=row["action"],
        actor=ActorRef(row["actor_type"], row["actor_id"], row["actor_email"]),
        org_id=row["org_id"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        changes=orjson.loads(row["changes"]),
        request_id=row["request_id"],
        ip=row["ip"],
        user_agent=row["user_agent"],
        id=row["id"],
        at=db.decode_time(row["at"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class _Where:
    """WHERE clauses over bound parameters (the store's own helper lives in a module that
    builds on this one)."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[object] = []

    def add(self, fragment: str, value: object) -> None:
        self.args.append(value)
        self.clauses.append(fragment.format(f"${len(self.args)}"))

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


class AuditRecords:
    """Reads and prunes the audit trail; events are only ever written by the journal."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _where(filters: AuditFilter) -> _Where:
        where = _Where()
        for column, value in (
            ("org_id", filters.org_id),
            ("action", filters.action),
            ("actor_id", filters.actor_id),
            ("target_type", filters.target_type),
            ("target_id", filters.target_id),
        ):
            if value is not None:
                where.add(f"{column} = {{}}", value)
        if filters.since is not None:
            where.add("at >= {}", filters.since)
        if filters.until is not None:
            where.add("at < {}", filters.until)
        return where

    async def page(
        self, filters: AuditFilter, limit: int, cursor: str | None = None
    ) -> Page[AuditEvent]:
        """Matching events, newest first."""
        where = self._where(filters)
        if cursor is not None:
            where.add("seq < {}", decode_cursor(cursor))
        where.args.append(limit + 1)
        found = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM audit_events{where.sql()} "
            f"ORDER BY seq DESC LIMIT ${len(where.args)}",
            *where.args,
        )
        items = [event_from_row(r, self.db) for r in found[:limit]]
        more = len(found) > limit and limit > 0
        return Page(items, encode_cursor(found[limit - 1]["seq"]) if more else None)

    async def export(self, filters: AuditFilter, batch: int = 500) -> AsyncIterator[AuditEvent]:
        """Every matching event, oldest first, read in batches."""
        after = 0
        while True:
            where = self._where(filters)
            where.add("seq > {}", after)
            where.args.append(batch)
            found = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM audit_events{where.sql()} "
                f"ORDER BY seq LIMIT ${len(where.args)}",
                *where.args,
            )
            for row in found:
                yield event_from_row(row, self.db)
            if len(found) < batch:
                return
            after = found[-1]["seq"]

    async def verify(self) -> Verdict:
        """Check every kept event against its hash and its predecessor, from the pruning
        checkpoint to the chain's head; the verdict names the first broken link."""
        head = await self.db.fetchrow(_CHAIN)
        if head is None:
            return Verdict(0, 1, BrokenLink(0, None, "the chain's head row is missing"))
        position, prev = int(head["pruned_seq"]) + 1, str(head["pruned_hash"])
        first, checked = position, 0
        while True:
            found = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2",
                position,
                VERIFY_BATCH,
            )
            for row in found:
                broken = _check(row, position, prev, self.db)
                if broken is not None:
                    return Verdict(checked, first, broken)
                position, prev = position + 1, row["hash"]
                checked += 1
            if len(found) < VERIFY_BATCH:
                break
        if position - 1 != int(head["seq"]) or prev != head["hash"]:
            reason = f"events from position {position} to the head ({head['seq']}) are missing"
            return Verdict(checked, first, BrokenLink(position, None, reason))
        return Verdict(checked, first)

    async def prune(self, cutoff: datetime, batch_size: int) -> int:
        """Delete one batch of the oldest events before `cutoff` (always a prefix of the
        chain) and move the checkpoint to the last one deleted; the number deleted."""
        decode_time = self.db.decode_time

        async def body(conn: Conn) -> int:
            found = await conn.fetch(
                "SELECT seq, hash, at FROM audit_events ORDER BY seq LIMIT $1", batch_size
            )
            doomed = []
            for row in found:
                if decode_time(row["at"]) >= cutoff:
                    break
                doomed.append(row)
            if not doomed:
                return 0
            last = doomed[-1]
            await conn.execute("DELETE FROM audit_events WHERE seq <= $1", last["seq"])
            await conn.execute(
                "UPDATE audit_chain SET pruned_seq = $1, pruned_hash = $2 WHERE id = 1",
                last["seq"],
                last["hash"],
            )
            return len(doomed)

        return await self.db.atomic(body)

    async def count(self) -> int:
        row = await self.db.fetchrow("SELECT COUNT(*) AS n FROM audit_events")
        return 0 if row is None else int(row["n"])


def _check(row: Row, position: int, prev: str, db: Database) -> BrokenLink | None:
    seq, event_id = int(row["seq"]), str(row["id"])
    if seq != position:
        return BrokenLink(
            seq, event_id, f"the events before it from position {position} are missing"
        )
    if row["prev_hash"] != prev:
        return BrokenLink(seq, event_id, "its prevHash is not the hash of the event before it")
    try:
        document = hashed_document(
            (
                event_id,
                format_time(db.decode_time(row["at"])),
                row["actor_type"],
                row["actor_id"],
                row["actor_email"],
                row["org_id"],
                row["action"],
            ),
            (row["target_type"], row["target_id"], orjson.loads(row["changes"])),
            (row["request_id"], row["ip"], row["user_agent"]),
        )
    except (ValueError, TypeError):
        return BrokenLink(seq, event_id, "its stored fields cannot be read")
    if link_hash(prev, document) != row["hash"]:
        return BrokenLink(seq, event_id, "its contents do not match its hash (altered)")
    return None
