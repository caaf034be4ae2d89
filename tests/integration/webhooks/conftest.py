"""Fixtures of the webhook suite: an engine (queue, worker, task service) over each SQL
backend with the webhook outbox wired in as the daemon wires it, a sender with fast
retries, and real HTTP receivers on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from taskflowd.config import WebhookSettings
from taskflowd.domain.entities import User
from taskflowd.handlers.ssrf import AddressPolicy
from taskflowd.webhooks.model import Delivery, Endpoint
from taskflowd.webhooks.outbox import WebhookOutbox
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.sender import Sender
from taskflowd.webhooks.service import WebhookService
from tests.integration.engine.conftest import admin, engine, make_engine
from tests.integration.engine.harness import Engine, EngineFactory
from tests.integration.queue.isolation import _pg_reused_url, pg_url
from tests.integration.queue.polling import eventually
from tests.integration.webhooks.receiver import Receiver

__all__ = ["_pg_reused_url", "admin", "engine", "make_engine", "pg_url"]

ServerFactory = Callable[..., Awaitable[TestServer]]
FAST = WebhookSettings(
    retry_schedule_s=(0.2,),
    timeout_s=15.0,
    poll_interval_s=0.2,
    max_in_flight=8,
    max_in_flight_per_endpoint=2,
)


@dataclass
class Counts:
    """What the sender reported (the node's metrics get the same calls)."""

    attempts: list[str] = dataclasses.field(default_factory=list)
    disabled: list[str] = dataclasses.field(default_factory=list)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.attempts.append(outcome)

    def webhook_endpoint_disabled(self, reason: str) -> None:
        self.disabled.append(reason)


@dataclass
class Hooks:
    """The webhook machinery of one node, over the engine's database."""

    engine: Engine
    service: WebhookService
    sender: Sender
    actor: User
    outbox: WebhookOutbox
    counts: Counts

    async def endpoint(self, url: str, events: list[str], **fields: Any) -> tuple[Endpoint, str]:
        return await self.service.create(self.actor, url, events, "test", **fields)

    async def deliveries(self, endpoint_id: str) -> list[Delivery]:
        return (await self.service.deliveries(self.actor, endpoint_id, 500, None)).items

    async def settled(self, endpoint_id: str, count: int) -> list[Delivery]:
        """Wait until the endpoint has `count` deliveries, none queued or being sent."""

        async def probe() -> list[Delivery] | None:
            found = await self.deliveries(endpoint_id)
            done = len(found) >= count and all(
                d.status.value in ("SUCCEEDED", "FAILED") for d in found
            )
            return found if done else None

        result: list[Delivery] = await eventually(probe, f"{count} deliveries to finish")
        return result


MakeHooks = Callable[..., Awaitable[Hooks]]
Receive = Callable[..., Awaitable[tuple[Receiver, str]]]


@pytest.fixture
async def receive(aiohttp_server: ServerFactory) -> AsyncIterator[Receive]:
    """`receive(answer=...)`: a started receiver and the URL it listens on; stalled
    answers end at teardown, so the server closes at once."""
    receivers: list[Receiver] = []

    async def start(**fields: Any) -> tuple[Receiver, str]:
        receiver = Receiver(**fields)
        receivers.append(receiver)
        server = await aiohttp_server(receiver.app(), host="127.0.0.1")
        return receiver, str(server.make_url("/hook"))

    yield start
    for receiver in receivers:
        receiver.release()


@pytest.fixture
async def make_hooks(
    make_engine: EngineFactory, admin: User, receive: Receive
) -> AsyncIterator[MakeHooks]:
    """`make(policy=None, **settings)`: an engine and a started sender (private addresses
    allowed unless `policy` says otherwise), stopped afterwards, before the receivers."""
    senders: list[Sender] = []

    async def make(policy: AddressPolicy | None = None, **settings: Any) -> Hooks:
        engine = await make_engine()
        db = engine.store.db
        outbox = WebhookOutbox(db)
        engine.store.outbox = outbox
        engine.queue.set_outbox(outbox)
        records = WebhookRecords(db)
        config = dataclasses.replace(FAST, **settings)
        counts = Counts()
        sender = Sender(
            records,
            config,
            policy or AddressPolicy(allow_private=True),
            engine.node_id,
            engine.supervisor,
            report=counts,
        )
        outbox.written = sender.nudge
        await sender.start()
        senders.append(sender)
        return Hooks(engine, WebhookService(records, config), sender, admin, outbox, counts)

    try:
        yield make
    finally:
        for sender in senders:
            await sender.stop()
