"""Execution events cross nodes: over PostgreSQL NOTIFY and over Redis pub/sub, each
node's bus gets the others' events once, tagged with their origin, never its own back,
and the flow resumes by itself after the transport was down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import orjson
import pytest

from taskflowd import events_bridge
from taskflowd.background import Supervisor
from taskflowd.events import Event, EventBus
from taskflowd.events_bridge import (
    PG_MAX_PAYLOAD,
    EventsBridge,
    build_bridge,
    decode,
    encode,
)
from taskflowd.store import SqlStore, open_store
from tests.integration.cluster.private_redis import PrivateRedis
from tests.integration.ops.private_pg import PrivatePostgres
from tests.integration.queue.polling import eventually


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[SqlStore]:
    store = open_store(url)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


class Node:
    """One node's bus and bridge, and everything its bus delivered."""

    def __init__(self, name: str, bridge: EventsBridge, bus: EventBus) -> None:
        self.name = name
        self.bridge = bridge
        self.bus = bus
        self.seen: list[Event] = []
        self._reader: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        inbox = await self._stack.enter_async_context(self.bus.subscribe())

        async def read() -> None:
            while True:
                self.seen.append(await inbox.get())

        self._reader = asyncio.create_task(read())
        await self.bridge.start()

    async def stop(self) -> None:
        await self.bridge.stop()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._stack.aclose()

    def remote(self) -> list[Event]:
        return [e for e in self.seen if e.origin is not None]


MakeNode = Callable[[str, str | None], Awaitable[Node]]


@pytest.fixture
async def make_node() -> AsyncIterator[MakeNode]:
    """`make_node(database_url, redis_url)`: a started node with a store of its own; at
    teardown each bridge stops before its store, as in the daemon."""
    async with contextlib.AsyncExitStack() as stack:
        nodes: list[Node] = []

        async def make(database_url: str, redis_url: str | None) -> Node:
            store = await stack.enter_async_context(opened(database_url))
            bus = EventBus()
            name = f"node-{len(nodes)}"
            supervisor = Supervisor(lambda task, exc: None)
            bridge = build_bridge(store, bus, name, supervisor, redis_url)
            assert bridge is not None
            node = Node(name, bridge, bus)
            await node.start()
            stack.push_async_callback(node.stop)
            nodes.append(node)
            return node

        yield make


async def exchange(a: Node, b: Node, count: int = 50) -> None:
    """`a` publishes `count` execution events (and a tick, which stays local); `b` gets
    exactly those, in order, tagged with `a`'s id; `a` hears nothing back."""
    before_b, before_a = len(b.remote()), len(a.remote())
    for i in range(count):
        a.bus.publish("execution", id=f"e{i}", taskId="t", status="COMPLETED", n=i)
    a.bus.publish("tick", taskId="t", lateness=0.0)

    async def arrived() -> bool:
        return len(b.remote()) - before_b >= count

    await eventually(arrived, f"{count} events from {a.name} on {b.name}")
    got = b.remote()[before_b:]
    assert [e.data["n"] for e in got] == list(range(count))
    assert {e.origin for e in got} == {a.name}
    assert {e.kind for e in got} == {"execution"}
    await asyncio.sleep(0.2)  # a loop would show up as more events by now
    assert len(b.remote()) - before_b == count
    assert len(a.remote()) == before_a


async def wait_connected(*nodes: Node) -> None:
    """Both receivers are subscribed: a probe event from each reaches the other."""
    for sender in nodes:
        for receiver in nodes:
            if receiver is sender:
                continue

            async def probe(sender: Node = sender, receiver: Node = receiver) -> bool:
                sender.bus.publish("execution", id="probe", taskId="probe", status="PENDING")
                await asyncio.sleep(0.05)
                return any(e.data.get("id") == "probe" for e in receiver.remote())

            await eventually(probe, f"{receiver.name} to hear {sender.name}")
            receiver.seen.clear()


# --- payloads -----------------------------------------------------------------------------
def test_encode_splits_into_payloads_that_fit() -> None:
    events = [Event("execution", {"id": f"{i:04d}", "pad": "x" * 200}) for i in range(200)]

    payloads = encode("node-a", events, PG_MAX_PAYLOAD)

    assert len(payloads) > 1
    assert all(len(p) <= PG_MAX_PAYLOAD for p in payloads)
    decoded = [e for p in payloads for e in decode(p, "node-b")]
    assert [e.data["id"] for e in decoded] == [f"{i:04d}" for i in range(200)]
    assert {e.origin for e in decoded} == {"node-a"}


def test_an_event_too_large_for_a_payload_is_left_out() -> None:
    events = [
        Event("execution", {"id": "big", "pad": "x" * 9000}),
        Event("execution", {"id": "ok"}),
    ]

    payloads = encode("node-a", events, PG_MAX_PAYLOAD)

    assert [e.data["id"] for p in payloads for e in decode(p, "node-b")] == ["ok"]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"o": 1, "e": []}',
        b'{"o": "x", "e": {}}',
        b'{"o": "x", "e": [["tick", {}], ["execution", []], ["execution"]]}',
    ],
)
def test_decode_ignores_what_it_does_not_understand(payload: bytes) -> None:
    assert decode(payload, "me") == []


def test_decode_drops_this_nodes_own_payloads() -> None:
    payload = orjson.dumps({"o": "me", "e": [["execution", {"id": "1"}]]})
    assert decode(payload, "me") == []
    assert decode(payload, "other") == [Event("execution", {"id": "1"}, origin="me")]


async def test_local_subscribers_never_see_other_nodes_events() -> None:
    bus = EventBus()
    async with bus.subscribe() as everything, bus.subscribe(remote=False) as own:
        bus.deliver(Event("execution", {"id": "theirs"}, origin="other"))
        bus.publish("execution", id="mine")
        assert [everything.get_nowait().data["id"] for _ in range(2)] == ["theirs", "mine"]
        assert own.get_nowait() == Event("execution", {"id": "mine"})
        assert own.empty()


# --- transports -----------------------------------------------------------------------------
async def test_sqlite_has_no_bridge(tmp_path: Path) -> None:
    async with opened(f"sqlite:///{tmp_path / 'one.db'}") as store:
        assert build_bridge(store, EventBus(), "n", Supervisor(lambda n, e: None), None) is None


async def test_events_cross_nodes_over_postgresql(pg_url: str, make_node: MakeNode) -> None:
    a, b = await make_node(pg_url, None), await make_node(pg_url, None)
    assert a.bridge.transport.name == "PostgreSQL"
    await wait_connected(a, b)
    await exchange(a, b)
    await exchange(b, a)


async def test_events_cross_nodes_over_redis(
    pg_url: str, redis_url: str, make_node: MakeNode
) -> None:
    a, b = await make_node(pg_url, redis_url), await make_node(pg_url, redis_url)
    assert a.bridge.transport.name == "Redis"
    await wait_connected(a, b)
    await exchange(a, b, count=500)
    await exchange(b, a)


async def sent_out(node: Node) -> None:
    """Wait until `node`'s bridge took every event published so far and sent (or let go
    of) them."""
    inbox = node.bridge._inbox
    assert inbox is not None

    async def done() -> bool:
        return inbox.empty() and not node.bridge._gathering

    await eventually(done, f"{node.name} to send what it published", interval_s=0.02)


async def alone(node: Node) -> None:
    """Wait until a send of `node` found no other node listening."""

    async def found_alone() -> bool:
        node.bus.publish("execution", id="hello", taskId="t", status="PENDING")
        await sent_out(node)
        return node.bridge.transport.alone()

    await eventually(found_alone, "a send to find no other node listening")


async def test_a_node_no_other_node_hears_sends_nothing_over_redis(
    pg_url: str, redis_url: str, make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_bridge, "ALONE_S", 600.0)
    a = await make_node(pg_url, redis_url)
    await alone(a)
    sent = a.bridge.sent
    for i in range(20):
        a.bus.publish("execution", id=f"e{i}", taskId="t", status="COMPLETED")
        await sent_out(a)

    assert a.bridge.sent == sent


async def test_a_node_that_joins_hears_a_node_that_was_alone(
    pg_url: str, redis_url: str, make_node: MakeNode
) -> None:
    a = await make_node(pg_url, redis_url)
    await alone(a)
    b = await make_node(pg_url, redis_url)
    await wait_connected(a, b)
    await exchange(a, b)


async def test_a_node_that_was_alone_still_sends_a_principal_event_to_a_node_that_joined(
    pg_url: str, redis_url: str, make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_bridge, "ALONE_S", 600.0)
    a = await make_node(pg_url, redis_url)
    await alone(a)
    b = await make_node(pg_url, redis_url)

    async def b_heard_by_a() -> bool:
        b.bus.publish("execution", id="probe", taskId="probe", status="PENDING")
        await sent_out(b)
        return any(e.data.get("id") == "probe" for e in a.remote())

    await eventually(b_heard_by_a, "both nodes to listen")
    assert a.bridge.transport.alone(), "a still believes it is alone"
    a.bus.publish("principal", apiKeyId="k1", userId="u1")

    async def revoked_on_b() -> bool:
        return any(e.kind == "principal" and e.data.get("apiKeyId") == "k1" for e in b.remote())

    await eventually(revoked_on_b, "the key's revocation on the node that joined")
    assert not a.bridge.transport.alone(), "that send found b listening"


async def test_clusters_sharing_a_redis_do_not_hear_each_other(
    tmp_path: Path, redis_url: str, make_node: MakeNode
) -> None:
    one, two = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'two.db'}"
    a, a2 = await make_node(one, redis_url), await make_node(one, redis_url)
    b = await make_node(two, redis_url)
    await wait_connected(a, a2)
    await exchange(a, a2)
    assert b.remote() == []


async def test_flow_resumes_after_redis_restarts(
    tmp_path: Path, private_redis: PrivateRedis, make_node: MakeNode
) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    a, b = await make_node(url, private_redis.url), await make_node(url, private_redis.url)
    await wait_connected(a, b)

    private_redis.kill()
    a.bus.publish("execution", id="lost", taskId="t", status="COMPLETED")

    async def send_failed() -> bool:
        return a.bridge.dropped > 0

    await eventually(send_failed, "a send to fail while Redis is down")
    private_redis.start()

    await wait_connected(a, b)
    await exchange(a, b)


async def test_flow_resumes_after_postgresql_restarts(
    private_pg: PrivatePostgres, make_node: MakeNode
) -> None:
    a, b = await make_node(private_pg.url, None), await make_node(private_pg.url, None)
    await wait_connected(a, b)

    await private_pg.stop()
    await private_pg.start()

    await wait_connected(a, b)
    await exchange(a, b)
    await exchange(b, a)


class _Recorded:
    """A transport that keeps what it sends and never hears anything."""

    name = "recorded"
    max_payload = PG_MAX_PAYLOAD

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def open(self) -> None:
        pass

    async def send(self, payloads: Sequence[bytes]) -> None:
        self.sent += payloads

    def alone(self) -> bool:
        return False

    async def listen(self, deliver: Callable[[bytes], None], connected: Callable[[], None]) -> None:
        connected()
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


async def test_stop_sends_an_event_the_sender_was_gathering() -> None:
    """An event published just before stop() goes out, even when the send loop has taken
    it and is letting others gather when it is cancelled."""
    bus, transport = EventBus(), _Recorded()
    bridge = EventsBridge(transport, bus, "me", Supervisor(lambda n, e: None))
    await bridge.start()
    bus.publish("execution", id="first", taskId="t", status="COMPLETED")
    inbox = bridge._inbox
    assert inbox is not None

    async def taken() -> bool:
        return inbox.empty()

    await eventually(taken, "the send loop to take the event", interval_s=0)
    await bridge.stop()
    sent = [e.data["id"] for p in transport.sent for e in decode(p, "other")]
    assert sent == ["first"]
