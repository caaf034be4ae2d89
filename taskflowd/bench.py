"""`taskflowd bench`: throughput and latency of the configured store and queue, in process,
with a job body chosen by `--handler` (taskflowd/bench_jobs.py).

Runs on its own bench user and task; on the default SQLite URL it uses a temporary
database so a real one is never touched. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from taskflowd.background import Supervisor
from taskflowd.bench_jobs import bench_registry
from taskflowd.bench_measure import cpu_s, next_event, percentile, rss_mb
from taskflowd.config import SecuritySettings, Settings, known_keys
from taskflowd.daemon import run_loop, tune_collector
from taskflowd.domain.entities import Execution, Task, User, utcnow
from taskflowd.domain.enums import MisfirePolicy, Role, TaskStatus, TaskType
from taskflowd.domain.jobs import new_execution
from taskflowd.events import Event, EventBus
from taskflowd.lifecycle.keys import keyring_of
from taskflowd.queue import open_queue
from taskflowd.queue.base import JobQueue
from taskflowd.store import SqlStore, open_store
from taskflowd.worker.pool import WorkerPool

_CHUNK = 2000


class _Bench:
    def __init__(self, settings: Settings, handler: str, redis_url: str) -> None:
        self.settings = settings
        self.store: SqlStore = open_store(settings.database, keyring_of(settings))
        self.queue: JobQueue = open_queue(settings, self.store)
        self.events = EventBus(subscriber_buffer=1_000_000)
        self.supervisor = Supervisor(lambda name, exc: None)
        self._handler_kind = handler
        self._redis_url = redis_url
        self.task: Task | None = None
        self.started: dict[str, float] = {}
        self.events.on("execution", self._on_execution)

    def _on_execution(self, data: dict[str, object]) -> None:
        if data.get("status") == "PROCESSING":
            self.started[str(data["id"])] = time.time()

    async def setup(self) -> None:
        self.handlers, handler = await bench_registry(self._handler_kind, self._redis_url)
        self.worker = WorkerPool(
            self.queue, self.handlers, self.settings.worker, "bench", self.events, self.supervisor
        )
        await self.store.start()
        await self.queue.start()
        now = utcnow()
        user = User(
            str(uuid.uuid4()),
            f"bench-{uuid.uuid4().hex[:8]}@bench.invalid",
            "!",
            "bench",
            "",
            Role.USER,
            False,
            0,
            now,
            now,
        )
        await self.store.create_user(user)
        self.task = Task(
            id=str(uuid.uuid4()),
            name="bench",
            description="taskflowd bench",
            type=TaskType.RECURRING,
            status=TaskStatus.PAUSED,
            handler=handler,
            payload={},
            cron_expression=None,
            timezone="UTC",
            scheduled_at=None,
            delay_ms=None,
            priority=0,
            max_retries=0,
            backoff_ms=0,
            timeout_ms=None,
            rate_limit=None,
            concurrency=None,
            misfire_policy=MisfirePolicy.RUN_ONCE,
            created_by=user.id,
            created_at=now,
            updated_at=now,
        )
        await self.store.create_task(self.task)
        self.user = user

    async def teardown(self) -> None:
        if self.task is not None:
            db = self.store.db
            await db.execute(
                "DELETE FROM retry_history WHERE execution_id IN "
                "(SELECT id FROM job_executions WHERE task_id = $1)",
                self.task.id,
            )
            await db.execute("DELETE FROM dead_letter_jobs WHERE task_id = $1", self.task.id)
            await db.execute("DELETE FROM job_executions WHERE task_id = $1", self.task.id)
            await db.execute("DELETE FROM tasks WHERE id = $1", self.task.id)
            await db.execute("DELETE FROM org_members WHERE user_id = $1", self.user.id)
            await db.execute(
                "DELETE FROM orgs WHERE id IN (SELECT default_org_id FROM users WHERE id = $1)",
                self.user.id,
            )
            await db.execute("DELETE FROM users WHERE id = $1", self.user.id)
        await self.queue.stop()
        await self.store.stop()
        await self.handlers.close()

    def _jobs(self, count: int, run_at: Callable[[int], datetime]) -> list[Execution]:
        assert self.task is not None
        task = dataclasses.replace(self.task, status=TaskStatus.ACTIVE)
        return [new_execution(task, run_at(i), f"bench-{uuid.uuid4().hex}") for i in range(count)]

    async def _set_active(self, active: bool) -> None:
        assert self.task is not None
        status = TaskStatus.ACTIVE if active else TaskStatus.PAUSED
        await self.store.db.execute(
            "UPDATE tasks SET status = $1 WHERE id = $2", status.value, self.task.id
        )

    async def _add(self, jobs: list[Execution]) -> float:
        started = time.perf_counter()
        for i in range(0, len(jobs), _CHUNK):
            await self.queue.add(jobs[i : i + _CHUNK])
        return time.perf_counter() - started

    async def _wait_done(
        self, expected: set[str], events: asyncio.Queue[Event]
    ) -> dict[str, float]:
        """Completion wall-clock time of each expected execution, from the event bus
        (see `next_event`)."""
        done: dict[str, float] = {}
        while len(done) < len(expected):
            event = await next_event(events)
            if event.data.get("status") == "COMPLETED" and event.data["id"] in expected:
                done[event.data["id"]] = time.time()
        return done

    async def drain(
        self, count: int, starting: Callable[[], object] | None = None
    ) -> dict[str, float]:
        """Enqueue `count` due jobs with no worker running, then start the worker and
        time until every job's outcome is committed; `starting` is called just before."""
        now = utcnow()
        jobs = self._jobs(count, lambda i: now)
        await self._set_active(True)
        enqueue_s = await self._add(jobs)
        async with self.events.subscribe() as events:
            if starting is not None:
                starting()
            started, cpu = time.perf_counter(), cpu_s()
            await self.worker.start()
            await self._wait_done({j.id for j in jobs}, events)
            drain_s, used_s = time.perf_counter() - started, cpu_s() - cpu
        await self._set_active(False)
        return {
            "enqueue_per_s": count / enqueue_s,
            "drain_per_s": count / drain_s,
            "cpu_us_per_job": used_s / count * 1e6,
        }

    async def latency(self, count: int, rate: float) -> list[float]:
        """An idle worker, jobs arriving one per enqueue at a steady `rate`: from the
        enqueue call to the handler's start."""
        await self._set_active(True)
        sent: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with self.events.subscribe() as events:
            for i, job in enumerate(self._jobs(count, lambda i: utcnow())):
                await asyncio.sleep(max(0.0, began + i / rate - loop.time()))
                sent[job.id] = time.time()
                await self.queue.add([dataclasses.replace(job, run_at=utcnow())])
            await self._wait_done(set(sent), events)
        await self._set_active(False)
        return [self.started[i] - at for i, at in sent.items()]

    async def lateness(self, count: int) -> list[float]:
        """Jobs all due at one instant, 2 s from now: the handler's start minus due time."""
        due = utcnow() + timedelta(seconds=2)
        jobs = self._jobs(count, lambda i: due)
        await self._add(jobs)
        await self._set_active(True)
        async with self.events.subscribe() as events:
            self.queue.wake()
            await self._wait_done({j.id for j in jobs}, events)
        await self._set_active(False)
        return [self.started[j.id] - due.timestamp() for j in jobs]

    async def far(self, count: int) -> float:
        """Schedule `count` jobs a day ahead with the worker running; returns peak RSS (MB)."""
        tomorrow = utcnow() + timedelta(days=1)
        for i in range(0, count, 50_000):
            await self._add(self._jobs(min(50_000, count - i), lambda _: tomorrow))
        await self._set_active(True)
        self.queue.wake()
        await asyncio.sleep(1.0)
        return rss_mb()


async def _main(settings: Settings, args: argparse.Namespace) -> list[tuple[str, str]]:
    bench = _Bench(settings, args.handler, args.redis_url)
    await bench.setup()
    # As `serve` does once the node is built: the figures are the daemon's.
    tune_collector()
    rows: list[tuple[str, str]] = []
    try:
        if getattr(args, "prune", 0):
            from taskflowd.bench_prune import prune_rows

            return await prune_rows(bench, args.prune, args.jobs, args.pairs)
        if getattr(args, "webhooks", False):
            from taskflowd.bench_webhooks import webhook_rows

            return await webhook_rows(bench, args.jobs, args.latency_jobs, args.rate)
        if getattr(args, "workflows", False):
            from taskflowd.bench_workflows import workflow_rows

            return await workflow_rows(bench, args.chain_steps, args.chains, args.workflow_runs)
        drained = await bench.drain(args.jobs)
        rows.append(("enqueue rate (jobs/s)", f"{drained['enqueue_per_s']:,.0f}"))
        rows.append(
            (f"drain, {args.jobs:,} {args.handler} jobs (jobs/s)", f"{drained['drain_per_s']:,.0f}")
        )
        rows.append(("drain, process CPU per job (µs)", f"{drained['cpu_us_per_job']:,.0f}"))
        e2e = await bench.latency(args.latency_jobs, args.rate)
        rows.append(
            (
                f"enqueue to start at {args.rate:,.0f}/s, p50 / p99 (ms)",
                f"{percentile(e2e, 0.5) * 1e3:.1f} / {percentile(e2e, 0.99) * 1e3:.1f}",
            )
        )
        late = await bench.lateness(args.delayed)
        rows.append(
            (
                f"lateness, {args.delayed:,} due at one instant, p50 / p99 (ms)",
                f"{percentile(late, 0.5) * 1e3:.1f} / {percentile(late, 0.99) * 1e3:.1f}",
            )
        )
        if args.far:
            rss = await bench.far(args.far)
            rows.append((f"peak RSS with {args.far:,} jobs a day ahead (MB)", f"{rss:,.0f}"))
        rows.append(("peak RSS (MB)", f"{rss_mb():,.0f}"))
    finally:
        await bench.worker.stop()
        await bench.teardown()
    return rows


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    if args.api:
        from taskflowd.bench_api import run_api_bench

        return run_api_bench(settings, args)
    if getattr(args, "audit", 0):
        from taskflowd.bench_audit import run_audit_bench

        return run_audit_bench(settings, args)
    if getattr(args, "encrypt", False):
        key = base64.b64encode(os.urandom(32)).decode()
        settings = dataclasses.replace(settings, security=SecuritySettings((key,)))
    temp: tempfile.TemporaryDirectory[str] | None = None
    if settings.database == known_keys()["database"].default:
        temp = tempfile.TemporaryDirectory(prefix="taskflowd-bench-")
        settings = dataclasses.replace(
            settings, database=f"sqlite:///{Path(temp.name) / 'bench.db'}"
        )
    try:
        rows = run_loop(_main(settings, args))
    finally:
        if temp is not None:
            temp.cleanup()
    backend = settings.database.split(":", 1)[0]
    print(
        f"taskflowd bench — store {backend}, queue {settings.queue}, job body {args.handler}, "
        f"worker concurrency {settings.worker.concurrency}, batch {settings.worker.batch_size}, "
        f"encryption {'on' if settings.security.encryption_keys else 'off'}"
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>16}")
    return 0
