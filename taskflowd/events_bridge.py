"""Execution events across the cluster: what one node publishes reaches every node's bus.

The bridge follows this node's `EventBus` and sends its own `execution` events, in
batches, to the other nodes: over Redis pub/sub when the cluster has Redis, else over
PostgreSQL `NOTIFY`. Whatever arrives from another node is delivered to the local bus
with the sender's node id as `Event.origin`, and is never sent on again, so nothing
loops. A single SQLite node has no one to tell and runs no bridge.

Events are notifications, not records: while the transport is down they are dropped
(the database keeps the truth), the receiver reconnects with backoff, and the flow
resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from taskflowd.background import Supervisor, wait_event
from taskflowd.events import Event, EventBus
from taskflowd.store.db import PostgresDatabase

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskflowd.store.base import Store
    from taskflowd.store.sql import SqlStore

log = logging.getLogger("taskflowd.events")

BRIDGED_KINDS = frozenset({"execution", "principal"})
LOSABLE_KINDS = frozenset({"execution"})
"""Events a node that finds no other node listening may leave unsent (`ALONE_S`): a
dashboard's live view, which its next page load shows anyway."""
PG_CHANNEL = "taskflow_events"
REDIS_CHANNEL_PREFIX = "taskflow:events:"
CLUSTER_ID_SETTING = "cluster_id"
PG_MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
REDIS_MAX_PAYLOAD = 256 * 1024
MAX_BATCH = 1000
SEND_BUFFER = 20_000  # a group commit publishes one event per outcome at once
PING_S = 5.0
GATHER_S = 0.01
"""How long the sender lets events gather after the first of a batch: a drain publishes
two events per job, a few at a time, and each send costs a round trip."""
STOP_FLUSH_S = 2.0
ALONE_S = 1.0
"""How long a node that found no other node listening sends only events that must not
be lost before it looks again (by sending): a node that joins hears all events within
that time."""
_BACKOFF_S = (0.5, 10.0)

Deliver = Callable[[bytes], None]


class Transport(Protocol):
    """Carries payloads between nodes; every node receives what any node sends."""

    name: str
    max_payload: int

    async def open(self) -> None:
        """Get ready to send and listen (raises StoreError when the store is down)."""

    async def send(self, payloads: Sequence[bytes]) -> None:
        """Broadcast payloads, in order, in one round trip; raises when the transport
        cannot be reached (some may have gone out)."""

    def alone(self) -> bool:
        """Whether a recent send reached no other node: sending can wait."""

    async def listen(self, deliver: Deliver, connected: Callable[[], None]) -> None:
        """Connect, call `connected()`, then pass each payload to `deliver` until the
        connection fails (raises) or is lost (returns)."""

    async def close(self) -> None: ...


class EventsBridge:
    """See the module docstring; `start()`/`stop()` like every component."""

    def __init__(
        self, transport: Transport, bus: EventBus, node_id: str, supervisor: Supervisor
    ) -> None:
        self.transport = transport
        self.bus = bus
        self.node_id = node_id
        self._supervisor = supervisor
        self._subscription: contextlib.AsyncExitStack | None = None
        self._inbox: asyncio.Queue[Event] | None = None
        self._gathering: list[Event] = []
        """Events the send loop took from the inbox and has not sent yet."""
        self._send_failing = False
        self._listen_failing = False
        self.sent = 0
        self.received = 0
        self.dropped = 0
        """Payloads sent, events received, payloads lost to a failing transport."""

    async def start(self) -> None:
        await self.transport.open()
        stack = contextlib.AsyncExitStack()
        self._inbox = await stack.enter_async_context(
            self.bus.subscribe(remote=False, buffer=SEND_BUFFER)
        )
        self._subscription = stack
        self._supervisor.spawn("events.send", self._send_loop)
        self._supervisor.spawn("events.receive", self._receive_loop)

    async def stop(self) -> None:
        """Stop receiving, send what this node published until now (briefly), close."""
        await self._supervisor.cancel("events.receive")
        await self._supervisor.cancel("events.send")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_FLUSH_S):
                batch, self._gathering = self._gathering, []
                await self._send(self._drain(batch))
        if self._subscription is not None:
            await self._subscription.aclose()
        self._subscription = None
        self._inbox = None
        await self.transport.close()

    # --- sending ------------------------------------------------------------------
    def _drain(self, batch: list[Event]) -> list[Event]:
        inbox = self._inbox
        while inbox is not None and not inbox.empty() and len(batch) < MAX_BATCH:
            batch.append(inbox.get_nowait())
        return batch

    async def _send_loop(self) -> None:
        inbox = self._inbox
        if inbox is None:
            return
        while True:
            self._gathering = [await inbox.get()]
            await asyncio.sleep(GATHER_S)  # stop() sends what was taken meanwhile
            batch, self._gathering = self._gathering, []
            await self._send(self._drain(batch))

    async def _send(self, batch: list[Event]) -> None:
        mine = [e for e in batch if e.kind in BRIDGED_KINDS]
        if self.transport.alone() and all(e.kind in LOSABLE_KINDS for e in mine):
            # A node that joined since may not hear these; a principal event still goes
            # out, or a credential it cached would outlive its revocation.
            return
        payloads = encode(self.node_id, mine, self.transport.max_payload)
        if not payloads:
            return
        # A drain of many jobs publishes two events per job: the payloads of a batch go
        # out together rather than one round trip each.
        try:
            await self.transport.send(payloads)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.dropped += len(payloads)
            if not self._send_failing:
                log.warning(
                    "cannot send events to other nodes over %s (%s); dropping them "
                    "until it answers",
                    self.transport.name,
                    exc,
                )
            self._send_failing = True
            return
        self.sent += len(payloads)
        if self._send_failing:
            log.info("sending events to other nodes over %s again", self.transport.name)
            self._send_failing = False

    # --- receiving ----------------------------------------------------------------
    async def _receive_loop(self) -> None:
        delay = _BACKOFF_S[0]
        while True:
            try:
                await self.transport.listen(self._on_payload, self._connected)
                reason = "the connection closed"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if not self._listen_failing:
                log.warning(
                    "lost events from other nodes over %s (%s); reconnecting",
                    self.transport.name,
                    reason,
                )
                self._listen_failing = True
                delay = _BACKOFF_S[0]
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_S[1])

    def _connected(self) -> None:
        if self._listen_failing:
            log.info("receiving events from other nodes over %s again", self.transport.name)
        self._listen_failing = False

    def _on_payload(self, payload: bytes) -> None:
        for event in decode(payload, self.node_id):
            self.received += 1
            self.bus.deliver(event)


def encode(origin: str, events: list[Event], max_payload: int) -> list[bytes]:
    """Payloads of at most `max_payload` bytes, each `{"o": origin, "e": [[kind, data]…]}`.
    An event too large for one payload on its own is left out."""
    head = _head(origin)
    tail = b"]}"
    payloads: list[bytes] = []
    items: list[bytes] = []
    size = len(head) + len(tail)
    for event in events:
        item = orjson.dumps([event.kind, event.data])
        if len(head) + len(item) + len(tail) > max_payload:
            log.debug("event of %d bytes is too large to send to other nodes", len(item))
            continue
        if items and size + 1 + len(item) > max_payload:
            payloads.append(head + b",".join(items) + tail)
            items, size = [], len(head) + len(tail)
        size += len(item) + (1 if items else 0)
        items.append(item)
    if items:
        payloads.append(head + b",".join(items) + tail)
    return payloads


def _head(origin: str) -> bytes:
    """How every payload `encode` writes for `origin` begins."""
    return b'{"o":' + orjson.dumps(origin) + b',"e":['


def decode(payload: bytes | str, own_node_id: str) -> list[Event]:
    """The events of another node's payload; nothing for this node's own or bad ones."""
    raw = payload.encode() if isinstance(payload, str) else payload
    if raw.startswith(_head(own_node_id)):
        # Every node hears its own payloads too: known by their head, they are not parsed.
        return []
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.debug("ignored a payload that is not JSON")
        return []
    if not isinstance(message, dict):
        return []
    origin, entries = message.get("o"), message.get("e")
    if not isinstance(origin, str) or origin == own_node_id or not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and entry[0] in BRIDGED_KINDS
            and isinstance(entry[1], dict)
        ):
            found.append(Event(entry[0], entry[1], origin=origin))
    return found


# --- transports -------------------------------------------------------------------------
class PostgresTransport:
    """`NOTIFY`/`LISTEN` on the store's database; listens on a connection of its own."""

    name = "PostgreSQL"
    max_payload = PG_MAX_PAYLOAD

    def __init__(self, db: PostgresDatabase, channel: str = PG_CHANNEL) -> None:
        self.db = db
        self.channel = channel

    async def open(self) -> None:
        return None

    async def send(self, payloads: Sequence[bytes]) -> None:
        await self.db.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
            self.channel,
            [p.decode() for p in payloads],
        )

    def alone(self) -> bool:
        """Never known: `NOTIFY` does not say who listens."""
        return False

    async def listen(self, deliver: Deliver, connected: Callable[[], None]) -> None:
        conn = await self.db.pool.acquire()
        lost = asyncio.Event()

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            deliver(payload.encode())

        def on_terminate(_conn: Any) -> None:
            lost.set()

        try:
            conn.add_termination_listener(on_terminate)
            await conn.add_listener(self.channel, on_notify)
            connected()
            while not lost.is_set():
                await wait_event(lost, PING_S)
                if not lost.is_set():
                    async with asyncio.timeout(PING_S):
                        await conn.execute("SELECT 1")
        finally:
            await self._give_back(conn, on_notify, on_terminate)

    async def _give_back(self, conn: Any, on_notify: Any, on_terminate: Any) -> None:
        # A connection the server closed is already back in the pool (detached); any
        # call on it fails, and a broken one is not worth a clean goodbye either.
        try:
            async with asyncio.timeout(PING_S):
                conn.remove_termination_listener(on_terminate)
                await conn.remove_listener(self.channel, on_notify)
                await self.db.pool.release(conn)
        except Exception:
            with contextlib.suppress(Exception):
                conn.terminate()
            with contextlib.suppress(Exception):
                await self.db.pool.release(conn)

    async def close(self) -> None:
        return None


class RedisTransport:
    """Redis pub/sub on one channel per cluster: pub/sub ignores database numbers, so
    the channel is named after the cluster id kept in the store (created on first use)."""

    name = "Redis"
    max_payload = REDIS_MAX_PAYLOAD

    def __init__(self, url: str, store: Store) -> None:
        from taskflowd.auth.ratelimit_redis import redis_client

        self.url = url
        self.store = store
        self.channel = ""
        self._publisher: Redis = redis_client(url, timeout_s=2.0)
        self._listening = False
        self._alone_until = 0.0

    async def open(self) -> None:
        cluster_id = await self.store.put_setting_if_absent(CLUSTER_ID_SETTING, uuid.uuid4().hex)
        self.channel = REDIS_CHANNEL_PREFIX + cluster_id

    async def send(self, payloads: Sequence[bytes]) -> None:
        async with self._publisher.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(self.channel, payload)
            receivers = await pipe.execute()
        # PUBLISH answers how many subscribers got it, this node's own listener included.
        alone = max(receivers, default=0) <= int(self._listening)
        self._alone_until = time.monotonic() + ALONE_S if alone else 0.0

    def alone(self) -> bool:
        return time.monotonic() < self._alone_until

    async def listen(self, deliver: Deliver, connected: Callable[[], None]) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = Redis.from_url(
            self.url,
            socket_connect_timeout=2.0,
            health_check_interval=PING_S,
            retry=Retry(NoBackoff(), 0),
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self._listening = True
            connected()
            while True:
                message = await pubsub.get_message(timeout=PING_S)
                if message is not None and message.get("type") == "message":
                    deliver(message["data"])
        finally:
            self._listening = False
            with contextlib.suppress(Exception):
                await pubsub.reset()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def close(self) -> None:
        await self._publisher.aclose()


def build_bridge(
    store: SqlStore,
    bus: EventBus,
    node_id: str,
    supervisor: Supervisor,
    redis_url: str | None,
) -> EventsBridge | None:
    """The bridge for this cluster: Redis pub/sub when `redis_url` is set, PostgreSQL
    NOTIFY on a PostgreSQL store, none on SQLite (a single node)."""
    if redis_url:
        transport: Transport = RedisTransport(redis_url, store)
    elif isinstance(store.db, PostgresDatabase):
        transport = PostgresTransport(store.db)
    else:
        return None
    return EventsBridge(transport, bus, node_id, supervisor)
