"""Writing audit events in the transaction of the change they record (an outbox).

A service opens a *recording* around the store call that makes a change:

    with store.journal.recording(event):
        await store.update_task(task, status)

The database appends the recording's events to the chain inside the first transaction
of that call that changes a row, just before it commits; a change that fails or changes
nothing writes no event. Appends take the chain's head row for update, so on PostgreSQL
the daemons of a cluster append one at a time and every event has one position. The
request a change came from (`origin`) and the recording are carried in context
variables of this journal, so the store's methods need no audit parameters.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from taskflowd.audit.model import SYSTEM, ActorRef, AuditEvent, Origin, canonical, diff
from taskflowd.domain.orgs import Actor

if TYPE_CHECKING:
    from taskflowd.domain.entities import User
    from taskflowd.store.db import Conn, Row

SEALED_FIELDS = frozenset({"payload", "result", "error"})
"""Record fields stored encrypted when encryption at rest is on: never copied into events."""

CHAIN_HEAD = "SELECT seq, hash FROM audit_chain WHERE id = 1"
CHAIN_MOVE = "UPDATE audit_chain SET seq = $1, hash = $2 WHERE id = 1"
_COLUMNS = (
    "INSERT INTO audit_events (seq, id, at, actor_type, actor_id, actor_email, org_id, action, "
    "target_type, target_id, changes, request_id, ip, user_agent, prev_hash, hash) VALUES "
)
_WIDTH = 16
INSERT = _COLUMNS + "(" + ",".join(f"${i}" for i in range(1, _WIDTH + 1)) + ")"


def pg_chain(first: int, guard: str = "") -> tuple[str, str]:
    """PostgreSQL: (the CTEs that take the chain's head, link the events after it and move
    it; the INSERT of the linked events, returning their `seq, prev_hash, hash`), for a
    `WITH RECURSIVE` statement. The events are 14 arrays (`pg_chain_args`), parameters
    `$first` on; the hash of each is `model.link_hash`, computed by the server from the
    canonical document sent for it. `guard`: a condition the head is taken under (none
    taken, nothing linked, when it is false)."""
    arrays = ", ".join(
        f"${first + i}::{kind}[]"
        for i, kind in enumerate(("bytea", "text", "timestamptz", *("text",) * 11))
    )
    ctes = (
        f"head AS (SELECT seq, hash FROM audit_chain WHERE id = 1{guard} FOR UPDATE), "
        f"e AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS e(doc, id, at, actor_type, "
        "actor_id, actor_email, org_id, action, target_type, target_id, changes, request_id, "
        "ip, user_agent, n)), "
        "chain(n, seq, prev_hash, hash) AS (SELECT 0::bigint, seq, ''::text, hash FROM head "
        "UNION ALL SELECT e.n, chain.seq + 1, chain.hash, "
        "encode(sha256(convert_to(chain.hash || E'\\n', 'UTF8') || e.doc), 'hex') "
        "FROM chain JOIN e ON e.n = chain.n + 1), "
        "moved AS (UPDATE audit_chain SET seq = last.seq, hash = last.hash "
        "FROM (SELECT seq, hash FROM chain ORDER BY n DESC LIMIT 1) AS last "
        "WHERE audit_chain.id = 1)"
    )
    insert = (
        _COLUMNS.removesuffix("VALUES ")
        + "SELECT chain.seq, e.id, e.at, e.actor_type, e.actor_id, e.actor_email, e.org_id, "
        "e.action, e.target_type, e.target_id, e.changes, e.request_id, e.ip, e.user_agent, "
        "chain.prev_hash, chain.hash FROM chain JOIN e ON e.n = chain.n "
        "RETURNING seq, prev_hash, hash"
    )
    return ctes, insert


_PG_APPEND = "WITH RECURSIVE {} {}".format(*pg_chain(1))
"""PostgreSQL: the events linked, inserted and the head moved in one statement: the head
stays locked for that statement and the commit, not for a round trip more with the
events' hashes."""


class Transactional(Protocol):
    @property
    def dialect(self) -> str: ...

    def transaction(self) -> AbstractAsyncContextManager[Conn]: ...


@dataclass(slots=True)
class Recording:
    """Events waiting for the change they record; `written` once that change committed."""

    events: tuple[AuditEvent, ...]
    staged: list[AuditEvent] | None = None
    written: list[AuditEvent] = field(default_factory=list)
    open: bool = True


class _Counting:
    """A connection that counts the rows its statements changed."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self.changed = 0

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        found = await self._conn.fetch(sql, *args)
        if found and writes(sql):
            self.changed += len(found)
        return found

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        found = await self._conn.fetchrow(sql, *args)
        if found is not None and writes(sql):
            self.changed += 1
        return found

    async def execute(self, sql: str, *args: Any) -> int:
        changed = await self._conn.execute(sql, *args)
        if writes(sql):
            self.changed += changed
        return changed

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        rows = list(args)
        await self._conn.executemany(sql, rows)
        self.changed += len(rows)


def writes(sql: str) -> bool:
    head = sql.lstrip()[:6].upper()
    return head in ("INSERT", "UPDATE", "DELETE") or (head == "WITH" and "RETURNING" in sql)


class _OriginScope:
    """The context of `Journal.origin`: a class rather than a generator, since nearly
    every request enters one."""

    __slots__ = ("_origin", "_token", "_var")

    def __init__(self, var: contextvars.ContextVar[Origin | None], origin: Origin) -> None:
        self._var = var
        self._origin = origin

    def __enter__(self) -> None:
        self._token = self._var.set(self._origin)

    def __exit__(self, *_: object) -> None:
        self._var.reset(self._token)


class Journal:
    """The audit trail's writer for one database; see the module's docstring."""

    def __init__(self, db: Transactional, sealed: bool = False) -> None:
        self._db = db
        self.sealed_fields = SEALED_FIELDS if sealed else frozenset()
        self._recording: contextvars.ContextVar[Recording | None] = contextvars.ContextVar(
            f"taskflowd.audit.recording.{id(self)}", default=None
        )
        self._origin: contextvars.ContextVar[Origin | None] = contextvars.ContextVar(
            f"taskflowd.audit.origin.{id(self)}", default=None
        )
        self._listeners: list[Callable[[AuditEvent], None]] = []

    # --- building events ----------------------------------------------------------------
    def origin(self, origin: Origin) -> _OriginScope:
        """Events built inside carry this request's id, address, user agent and key."""
        return _OriginScope(self._origin, origin)

    def actor(self, who: User | Actor | None) -> ActorRef:
        """Who is acting: the request's API key when it came with one, else the user,
        else the system."""
        if who is None:
            return SYSTEM
        user = who.user if isinstance(who, Actor) else who
        origin = self._origin.get()
        if origin is not None and origin.api_key_id is not None:
            return ActorRef("apiKey", origin.api_key_id, user.email)
        return ActorRef("user", user.id, user.email)

    def event(
        self,
        action: str,
        who: User | Actor | None,
        org_id: str | None,
        target: tuple[str, str | None] | None = None,
        changes: dict[str, Any] | None = None,
        *,
        actor: ActorRef | None = None,
    ) -> AuditEvent:
        """An event of the current request (if any) about `target` (type, id)."""
        origin = self._origin.get() or Origin()
        target_type, target_id = target if target is not None else (None, None)
        return AuditEvent(
            action=action,
            actor=actor if actor is not None else self.actor(who),
            org_id=org_id,
            target_type=target_type,
            target_id=target_id,
            changes=changes or {},
            request_id=origin.request_id,
            ip=origin.ip,
            user_agent=origin.user_agent,
        )

    def diff(
        self, before: Any, after: Any, fields: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """`model.diff` with this database's encrypted fields kept out."""
        return diff(before, after, fields, sealed=self.sealed_fields)

    # --- writing ------------------------------------------------------------------------
    @contextmanager
    def recording(self, *events: AuditEvent) -> Iterator[Recording]:
        """Write `events` with the first committed change made inside (see the module)."""
        recording = Recording(events)
        token = self._recording.set(recording)
        try:
            yield recording
        finally:
            recording.open = False
            self._recording.reset(token)

    def pending(self) -> Recording | None:
        """The recording still waiting for its change in this context, if any."""
        recording = self._recording.get()
        if recording is None or not recording.open or recording.written:
            return None
        return recording

    @asynccontextmanager
    async def bound(self, conn: Conn) -> AsyncIterator[Conn]:
        """Wrap the body of one transaction on `conn`: when a recording is pending and a
        statement changed a row, its events are appended at the end of the body."""
        recording = self.pending()
        if recording is None:
            yield conn
            return
        recording.staged = None
        counting = _Counting(conn)
        yield counting
        if counting.changed:
            recording.staged = await self.append(conn, recording.events)

    def committed(self) -> None:
        """The transaction `bound` wrapped has committed: its events are written."""
        recording = self._recording.get()
        if recording is None or not recording.staged:
            return
        recording.written, recording.staged = recording.staged, None
        self.appended(recording.written)

    async def write(self, *events: AuditEvent) -> None:
        """Append events that record no change of data (a refused login) on their own."""
        token = self._recording.set(None)
        try:
            async with self._db.transaction() as conn:
                written = await self.append(conn, events)
        finally:
            self._recording.reset(token)
        self.appended(written)

    async def append(self, conn: Conn, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Chain `events` after the head, on `conn` inside its transaction."""
        if self._db.dialect == "postgresql":
            return await _pg_append(conn, events) if events else []
        head = await conn.fetchrow(CHAIN_HEAD)
        if head is None:
            raise RuntimeError("the audit chain has no head row; run the migrations")
        chain = link(int(head["seq"]), str(head["hash"]), events)
        if not chain.rows:
            return []
        await conn.executemany(INSERT, chain.rows)
        await conn.execute(CHAIN_MOVE, chain.seq, chain.hash)
        return chain.events

    def appended(self, events: Sequence[AuditEvent]) -> None:
        """Events `append`ed inside a caller's own transaction have committed."""
        for event in events:
            self._told(event)

    def on_written(self, listener: Callable[[AuditEvent], None]) -> None:
        """Call `listener` with every event this journal wrote, once committed."""
        self._listeners.append(listener)

    def _told(self, event: AuditEvent) -> None:
        for listener in self._listeners:
            listener(event)


async def _pg_append(conn: Conn, events: Sequence[AuditEvent]) -> list[AuditEvent]:
    linked = await conn.fetch(_PG_APPEND, *pg_chain_args(events))
    if len(linked) != len(events):
        raise RuntimeError("the audit chain has no head row; run the migrations")
    return pg_linked(events, linked)


def pg_chain_args(events: Sequence[AuditEvent]) -> list[Any]:
    """The arrays `pg_chain`'s statement takes for `events`."""
    rows = [_values(0, e) for e in events]
    columns: list[Any] = [list(column) for column in zip(*rows, strict=True)][1:14]
    return [[canonical(e.document()) for e in events], *columns]


def pg_linked(events: Sequence[AuditEvent], linked: Sequence[Row]) -> list[AuditEvent]:
    """`events` with the hashes of the rows `pg_chain`'s INSERT returned for them."""
    ordered = sorted(linked, key=lambda row: int(row["seq"]))
    return [
        dataclasses.replace(e, prev_hash=str(row["prev_hash"]), hash=str(row["hash"]))
        for e, row in zip(events, ordered, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class Link:
    """Events chained after a head: what to insert, and the chain's new head."""

    events: list[AuditEvent]
    rows: list[tuple[Any, ...]]
    seq: int
    hash: str


def link(seq: int, prev: str, events: Sequence[AuditEvent]) -> Link:
    """Chain `events` after the head (`seq`, `prev`): pure, so a caller that runs its
    statements elsewhere (SQLite's writer thread) can append in the same step."""
    chained: list[AuditEvent] = []
    rows = []
    for event in events:
        seq += 1
        linked = event.chained(prev)
        prev = linked.hash
        chained.append(linked)
        rows.append(_values(seq, linked))
    return Link(chained, rows, seq, prev)


def _values(seq: int, e: AuditEvent) -> tuple[Any, ...]:
    return (
        seq,
        e.id,
        e.at,
        e.actor.type,
        e.actor.id,
        e.actor.email,
        e.org_id,
        e.action,
        e.target_type,
        e.target_id,
        canonical(dict(e.changes)).decode(),
        e.request_id,
        e.ip,
        e.user_agent,
        e.prev_hash,
        e.hash,
    )
