"""The composition root: builds every component from Settings, starts them in order,
stops them in reverse, and turns SIGTERM/SIGINT into a graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from taskflowd import __version__
from taskflowd.api.assembly import build_daemon_app
from taskflowd.api.parts import NodeParts
from taskflowd.api.server import HttpServer
from taskflowd.auth.principals import PRINCIPAL_EVENT
from taskflowd.background import Supervisor
from taskflowd.cluster import Membership, shared_redis_url
from taskflowd.config import Settings
from taskflowd.events import EventBus
from taskflowd.events_bridge import EventsBridge, build_bridge
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.handlers.ssrf import AddressPolicy
from taskflowd.lifecycle.keys import check_keys, keyring_of
from taskflowd.lifecycle.pruner import Pruner
from taskflowd.metrics import Metrics
from taskflowd.queue import open_queue
from taskflowd.queue.base import JobQueue
from taskflowd.scheduler.timer import Timer
from taskflowd.services.bootstrap import bootstrap
from taskflowd.services.handler_check import check_handlers
from taskflowd.services.quotas import QuotaBook
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore, open_store
from taskflowd.store.db import SqliteDatabase
from taskflowd.systemd import SystemdNotifier
from taskflowd.webhooks.outbox import WebhookOutbox
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.sender import Sender
from taskflowd.webhooks.service import WebhookService
from taskflowd.worker.pool import WorkerPool
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService

T = TypeVar("T")

STOP_MARGIN_S = 10.0
"""How long a component may take to stop beyond the worker's shutdown grace before the
node gives up on it and goes on stopping the rest (leases then expire as after a crash)."""

log = logging.getLogger("taskflowd.daemon")


@dataclass
class _Component:
    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


@dataclass
class Daemon:
    """One taskflowd node. Build with `Daemon.build(settings)`, then `await run()` or
    `start()`/`stop()` (tests)."""

    settings: Settings
    store: SqlStore
    queue: JobQueue
    handlers: HandlerRegistry
    events: EventBus
    supervisor: Supervisor
    tasks: TaskService
    workflows: WorkflowService
    webhooks: WebhookService
    node_id: str
    membership: Membership | None = None
    bridge: EventsBridge | None = None
    worker: WorkerPool | None = None
    timer: Timer | None = None
    http: Any = None
    jwt_secret: str = ""
    metrics: Metrics | None = None
    notifier: SystemdNotifier | None = None
    pruner: Pruner | None = None
    sender: Sender | None = None
    _components: list[_Component] = field(default_factory=list)
    _started: list[_Component] = field(default_factory=list)
    _stop_requested: asyncio.Event | None = None
    _fatal: str | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        app_factory: Callable[[NodeParts], web.Application] = build_daemon_app,
    ) -> Daemon:
        node_id = uuid.uuid4().hex[:16]
        store = open_store(settings.database, keyring_of(settings))
        queue = open_queue(settings, store)
        h = settings.handlers
        handlers = HandlerRegistry.build(
            shell_enabled=h.shell_enabled,
            http_allow_private=h.http_allow_private,
            http_allowed_networks=h.http_allowed_networks,
            http_timeout_s=h.http_timeout_s,
            http_max_response_bytes=h.http_max_response_bytes,
            shell_max_output_bytes=h.shell_max_output_bytes,
            admin_only=h.admin_only,
            open_to_users=h.open_to_users,
        )
        events = EventBus()
        quotas = QuotaBook(store, settings.orgs.quotas())
        events.on(PRINCIPAL_EVENT, quotas.on_event)
        daemon = cls(
            settings=settings,
            store=store,
            queue=queue,
            handlers=handlers,
            events=events,
            supervisor=Supervisor(lambda name, exc: None),
            workflows=WorkflowService(WorkflowRecords(store.db), queue, handlers, events, quotas),
            tasks=TaskService(store, queue, handlers, events, quotas),
            webhooks=WebhookService(WebhookRecords(store.db), settings.webhooks),
            node_id=node_id,
        )
        queue.set_final_hook(daemon.workflows.on_final)
        outbox = WebhookOutbox(store.db)
        store.outbox = outbox
        queue.set_outbox(outbox)
        daemon.workflows.records.progress.outbox = outbox
        queue.set_reopen_hook(daemon.workflows.on_reopen)
        daemon.supervisor = Supervisor(daemon._on_fatal)
        daemon.membership = Membership(store, settings, node_id, daemon.supervisor)
        daemon.bridge = build_bridge(
            store, events, node_id, daemon.supervisor, shared_redis_url(settings)
        )
        if settings.has_role("worker"):
            daemon.worker = WorkerPool(
                queue, handlers, settings.worker, node_id, events, daemon.supervisor
            )
        if settings.has_role("scheduler"):
            daemon.timer = Timer(
                queue, settings.scheduler, events, daemon.supervisor, daemon.workflows
            )
        daemon.metrics = Metrics(
            events,
            daemon.supervisor,
            queue=queue,
            org_depths=queue.depths_by_org,
            org_series=settings.metrics.org_series,
            running_jobs=daemon.running_jobs,
            handler_names=handlers.names(),
            plugin_failures=[f.name for f in handlers.plugin_failures],
        )
        store.journal.on_written(daemon.metrics.audited)
        if isinstance(store.db, SqliteDatabase):
            store.db.checkpointer.report = daemon.metrics
        if settings.has_role("worker"):
            daemon.sender = Sender(
                daemon.webhooks.records,
                settings.webhooks,
                AddressPolicy.from_config(
                    allow_private=h.http_allow_private,
                    allowed_networks=h.http_allowed_networks,
                ),
                node_id,
                daemon.supervisor,
                report=daemon.metrics,
            )
            outbox.written = daemon.sender.nudge
        from taskflowd.api.idempotency import KEEP

        daemon.pruner = Pruner(
            store.db,
            settings.retention,
            node_id,
            daemon.supervisor,
            idempotency_keep=KEEP,
            report=daemon.metrics,
            busy=daemon.worker.backlogged if daemon.worker is not None else None,
        )
        # The watchdog follows an embedded database only: a PostgreSQL outage is no
        # reason for systemd to restart a node, which keeps running and says so on /ready.
        local_db = store.db.dialect == "sqlite"
        daemon.notifier = SystemdNotifier(
            daemon.supervisor,
            health=store.ping if local_db else None,
            summary=daemon.status_line,
        )
        daemon.http = HttpServer(lambda: app_factory(daemon.parts()), settings.http)
        daemon._components = daemon._plan()
        return daemon

    def _plan(self) -> list[_Component]:
        parts = [
            _Component("store", self.store.start, self.store.stop),
            _Component("keys", self._check_keys, _nothing),
            _Component("bootstrap", self._bootstrap, _nothing),
            _Component("queue", self.queue.start, self.queue.stop),
        ]
        if self.membership is not None:
            parts.append(_Component("node", self.membership.start, self.membership.stop))
        if self.bridge is not None:  # before the producers of the events it forwards
            parts.append(_Component("events", self.bridge.start, self.bridge.stop))
        if self.metrics is not None:  # before the producers of the events it counts
            parts.append(_Component("metrics", self.metrics.start, self.metrics.stop))
        if self.worker is not None:  # before any job could fail for want of its handler
            parts.append(_Component("handlers", self._check_handlers, _nothing))
        if self.timer is not None:
            parts.append(_Component("scheduler", self.timer.start, self.timer.stop))
        if self.worker is not None:
            parts.append(_Component("worker", self.worker.start, self.worker.stop))
        if self.sender is not None:
            parts.append(_Component("webhooks", self.sender.start, self.sender.stop))
        if self.pruner is not None:
            parts.append(_Component("pruner", self.pruner.start, self.pruner.stop))
        parts.append(_Component("http", self.http.start, self.http.stop))
        return parts

    def _on_fatal(self, name: str, exc: BaseException) -> None:
        self._fatal = f"{name}: {exc}"
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def _bootstrap(self) -> None:
        self.jwt_secret = await bootstrap(self.store, self.settings)

    async def _check_keys(self) -> None:
        await check_keys(self.store.db)

    async def _check_handlers(self) -> None:
        await check_handlers(
            self.store.db, self.handlers, allow_missing=self.settings.handlers.allow_missing
        )

    async def start(self) -> None:
        """Start every component in order; on failure, stop those started and re-raise."""
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        for component in self._components:
            try:
                await component.start()
            except BaseException:
                log.error("could not start %s", component.name)
                await self.stop()
                raise
            self._started.append(component)
        if self.notifier is not None:
            await self.notifier.start()
            self.notifier.ready(self.status_line())
        log.info(
            "taskflowd %s serving on %s:%s (node %s, roles %s)",
            __version__,
            self.settings.http.host,
            self.http.port,
            self.node_id,
            ",".join(self.settings.roles),
        )

    async def stop(self) -> None:
        """Stop started components in reverse order; errors are logged, not raised."""
        if self.notifier is not None:
            self.notifier.stopping()
        limit_s = self.settings.worker.shutdown_grace_s + STOP_MARGIN_S
        while self._started:
            component = self._started.pop()
            try:
                async with asyncio.timeout(limit_s):
                    await component.stop()
            except TimeoutError:
                log.error(
                    "%s did not stop within %g s; going on without it", component.name, limit_s
                )
            except Exception:
                log.exception("error while stopping %s", component.name)
        if self.notifier is not None:
            await self.notifier.stop()
        await self.supervisor.cancel_all()
        await self.handlers.close()

    def parts(self) -> NodeParts:
        """What the web application is built from (after bootstrap: the JWT secret)."""
        if self.metrics is None:
            raise RuntimeError("the daemon's metrics must exist before its web app")
        return NodeParts(
            settings=self.settings,
            store=self.store,
            queue=self.queue,
            handlers=self.handlers,
            events=self.events,
            supervisor=self.supervisor,
            tasks=self.tasks,
            workflows=self.workflows,
            webhooks=self.webhooks,
            metrics=self.metrics,
            jwt_secret=self.jwt_secret,
            membership=self.membership,
        )

    def running_jobs(self) -> int:
        return self.worker.active if self.worker is not None else 0

    def status_line(self) -> str:
        """The one-line summary systemd shows in `systemctl status`."""
        port = self.http.port if self.http is not None else None
        return f"serving on {self.settings.http.host}:{port}, {self.running_jobs()} running jobs"

    def request_stop(self) -> None:
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the process exit code."""
        # Handlers first: a signal during a slow start-up still stops the node cleanly.
        self._stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        # Start-up ran with the collector paused (`cli.main`); it resumes now.
        tune_collector()
        gc.enable()
        await self._stop_requested.wait()
        log.info("shutting down")
        await self.stop()
        if self._fatal:
            log.critical("stopped because a critical task failed: %s", self._fatal)
            return 1
        return 0


async def _nothing() -> None:
    return None


_YOUNG_OBJECTS = 10_000


def tune_collector() -> None:
    """Once a node (or a bench) is built: what it made lives as long as it, so later
    collections leave it out (`gc.freeze`); and the youngest generation is collected once
    `_YOUNG_OBJECTS` more container objects exist rather than 700. Every job makes a few
    dozen that die young (its task and coroutine, futures, rows, events): at 700 a drain
    of real jobs ran a collection every ~30 jobs, each walking what the jobs in flight
    held, 8-15 µs of every job's time on the event loop (measured with `gc.callbacks`)."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(_YOUNG_OBJECTS, middle, oldest)


def tune_interpreter() -> None:
    """Shorten the GIL switch interval: the event loop and the database driver threads
    hand the GIL back and forth for every row, and at the default 5 ms each hand-over can
    stall the driver thread for a whole interval while the loop is busy."""
    sys.setswitchinterval(0.0005)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` in a fresh event loop (uvloop when installed), with the interpreter
    tuned as for the daemon: `serve` and `bench` run the same way."""
    tune_interpreter()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def run_daemon(settings: Settings) -> int:
    return run_loop(_serve(settings))


async def _serve(settings: Settings) -> int:
    daemon = Daemon.build(settings)
    try:
        return await daemon.run()
    except Exception as exc:
        print(f"taskflowd: cannot start: {exc}", file=sys.stderr)
        return 1
