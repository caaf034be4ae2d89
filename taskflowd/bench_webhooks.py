"""`taskflowd bench --webhooks`: what webhook deliveries cost and how soon they start.

Jobs run in the bench's own org (the bench user's), so no endpoint of a real org gets a
delivery. A local receiver on 127.0.0.1 (an aiohttp app in this process: its CPU counts
as the bench's) answers 204 to every POST; the sender may reach that address only.

- Delivery start latency: with one endpoint subscribed to `execution.completed`, jobs
  arrive one at a time at `--rate`; for each, the receiver's arrival time minus the
  `completedAt` the delivery carries.
- Fan-out cost: `--jobs` jobs drained with no endpoint, then with ten endpoints (each
  completion fans out to ten deliveries), timed to the last completion and to the last
  delivery received, with the process's CPU time per job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from taskflowd.bench_measure import cpu_s, percentile
from taskflowd.domain.entities import utcnow
from taskflowd.handlers.ssrf import AddressPolicy
from taskflowd.webhooks.model import Endpoint
from taskflowd.webhooks.outbox import WebhookOutbox
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.rules import EndpointStatus, new_secret
from taskflowd.webhooks.sender import Sender
from taskflowd.worker.pool import WorkerPool

if TYPE_CHECKING:
    from taskflowd.bench import _Bench

FANOUT = 10
_EVENT = "execution.completed"
_RECEIVE_TIMEOUT_S = 120.0
_SETTLE_POLL_S = 0.01


class _Receiver:
    """Counts the deliveries it gets and keeps, per message, arrival minus `completedAt`."""

    def __init__(self) -> None:
        self.received = 0
        self.delays: list[float] = []
        self._target = 0
        self._reached = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{n}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = orjson.loads(await request.read())
        completed = body["data"].get("completedAt")
        if completed is not None:
            self.delays.append(arrived - datetime.fromisoformat(completed).timestamp())
        self.received += 1
        if self.received >= self._target:
            self._reached.set()
        return web.Response(status=204)

    def reset(self, target: int) -> None:
        self.received, self.delays, self._target = 0, [], target
        self._reached.clear()

    async def wait(self) -> None:
        """Until `target` deliveries arrived; fails when none arrives for 120 s."""
        while self.received < self._target:
            seen = self.received
            try:
                await asyncio.wait_for(self._reached.wait(), _RECEIVE_TIMEOUT_S)
            except TimeoutError:
                if self.received == seen:
                    raise


class _Hooks:
    def __init__(self, bench: _Bench) -> None:
        self.bench = bench
        self.records = WebhookRecords(bench.store.db)
        self.receiver = _Receiver()
        # The receiver's address only: the sender refuses every other private address.
        policy = AddressPolicy.from_config(allow_private=False, allowed_networks=("127.0.0.1/32",))
        self.sender = Sender(
            self.records, bench.settings.webhooks, policy, "bench", bench.supervisor
        )
        self.org_id = ""
        self.endpoints = 0

    async def setup(self) -> None:
        """Move the bench task to the bench user's own org and route outcomes through the
        webhook outbox, as a daemon does."""
        bench = self.bench
        assert bench.task is not None
        row = await bench.store.db.fetchrow(
            "SELECT default_org_id FROM users WHERE id = $1", bench.user.id
        )
        assert row is not None and row["default_org_id"] is not None
        self.org_id = str(row["default_org_id"])
        await bench.store.db.execute(
            "UPDATE tasks SET org_id = $1 WHERE id = $2", self.org_id, bench.task.id
        )
        bench.task = dataclasses.replace(bench.task, org_id=self.org_id)
        bench.queue.set_outbox(WebhookOutbox(bench.store.db, written=self.sender.nudge))
        await self.receiver.start()

    async def teardown(self) -> None:
        await self._settled()
        await self.sender.stop()
        await self.receiver.stop()
        db = self.bench.store.db
        await db.execute("DELETE FROM webhook_deliveries WHERE org_id = $1", self.org_id)
        await db.execute("DELETE FROM webhook_endpoints WHERE org_id = $1", self.org_id)

    async def subscribe(self, count: int) -> None:
        """Add endpoints until `count` listen to `execution.completed`."""
        now = utcnow()
        for n in range(self.endpoints, count):
            endpoint = Endpoint(
                id=str(uuid.uuid4()),
                org_id=self.org_id,
                url=f"http://127.0.0.1:{self.receiver.port}/hook/{n}",
                description="taskflowd bench",
                events=(_EVENT,),
                task_id=None,
                workflow_id=None,
                status=EndpointStatus.ACTIVE,
                disabled_reason=None,
                failing_since=None,
                previous_secret_until=None,
                created_by=self.bench.user.id,
                created_at=now,
                updated_at=now,
            )
            await self.records.create(endpoint, new_secret())
        self.endpoints = max(self.endpoints, count)

    async def drain(self, count: int) -> dict[str, float]:
        """Enqueue `count` due jobs, start a fresh worker, and time until every job is
        completed and until every delivery arrived."""
        bench = self.bench
        await bench.worker.stop()
        bench.worker = WorkerPool(
            bench.queue, bench.handlers, bench.settings.worker, "bench", bench.events,
            bench.supervisor,
        )  # fmt: skip
        now = utcnow()
        jobs = bench._jobs(count, lambda i: now)
        await bench._set_active(True)
        await bench._add(jobs)
        self.receiver.reset(count * self.endpoints)
        async with bench.events.subscribe() as events:
            started, cpu = time.perf_counter(), cpu_s()
            await bench.worker.start()
            await bench._wait_done({j.id for j in jobs}, events)
            done_s, done_cpu = time.perf_counter() - started, cpu_s() - cpu
        await self.receiver.wait()
        await self._settled()
        delivered_s, delivered_cpu = time.perf_counter() - started, cpu_s() - cpu
        await bench._set_active(False)
        return {
            "completed_per_s": count / done_s,
            "delivered_per_s": count / delivered_s,
            "cpu_us_per_job": delivered_cpu / count * 1e6,
            "cpu_us_to_completed": done_cpu / count * 1e6,
        }

    async def latency(self, count: int, rate: float) -> list[float]:
        self.receiver.reset(count * self.endpoints)
        await self.bench.latency(count, rate)
        await self.receiver.wait()
        await self._settled()
        return self.receiver.delays

    async def _settled(self) -> None:
        """Until the sender has recorded every attempt it made (at most 120 s)."""
        for _ in range(int(_RECEIVE_TIMEOUT_S / _SETTLE_POLL_S)):
            if not self.sender.in_flight:
                return
            await asyncio.sleep(_SETTLE_POLL_S)


async def webhook_rows(bench: _Bench, jobs: int, count: int, rate: float) -> list[tuple[str, str]]:
    """Delivery start latency at `rate` jobs/s, then `jobs` jobs drained without and with
    ten endpoints; the bench's table rows."""
    hooks = _Hooks(bench)
    await hooks.setup()
    try:
        plain = await hooks.drain(jobs)
        await hooks.subscribe(1)
        await hooks.sender.start()
        delays = await hooks.latency(count, rate)
        await hooks.subscribe(FANOUT)
        fanned = await hooks.drain(jobs)
    finally:
        await hooks.teardown()
    lost = 1 - fanned["delivered_per_s"] / plain["delivered_per_s"]
    extra_us = fanned["cpu_us_per_job"] - plain["cpu_us_per_job"]
    settings = bench.settings.webhooks
    return [
        (
            f"delivery start after completedAt at {rate:,.0f}/s, p50 / p99 (ms)",
            f"{percentile(delays, 0.5) * 1e3:.1f} / {percentile(delays, 0.99) * 1e3:.1f}",
        ),
        (f"drain, {jobs:,} jobs, no endpoint (jobs/s)", f"{plain['delivered_per_s']:,.0f}"),
        (
            f"drain, {FANOUT} endpoints, to last completion (jobs/s)",
            f"{fanned['completed_per_s']:,.0f}",
        ),
        (
            f"drain, {FANOUT} endpoints, to last delivery recorded (jobs/s)",
            f"{fanned['delivered_per_s']:,.0f}",
        ),
        (
            "deliveries received (deliveries/s)",
            f"{fanned['delivered_per_s'] * FANOUT:,.0f}",
        ),
        ("drain rate lost to webhooks", f"{lost:.1%}"),
        (
            f"process CPU per job, none / {FANOUT} endpoints (µs)",
            f"{plain['cpu_us_per_job']:,.0f} / {fanned['cpu_us_per_job']:,.0f}",
        ),
        ("CPU share of webhooks", f"{extra_us / fanned['cpu_us_per_job']:.1%}"),
        (
            f"CPU of {FANOUT} deliveries per job at 1,000 jobs/s (cores)",
            f"{extra_us * 1000 / 1e6:.2f}",
        ),
        (
            "sender: in flight / per endpoint / poll (s)",
            f"{settings.max_in_flight} / {settings.max_in_flight_per_endpoint} / "
            f"{settings.poll_interval_s:g}",
        ),
    ]
