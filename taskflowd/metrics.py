"""Prometheus metrics of one daemon, in a registry of its own (never the global one).

Job and scheduler metrics are fed by the event bus; HTTP metrics by an aiohttp
middleware; queue depth is read from the queue when scraped (cached briefly, so a burst
of scrapes costs one query). Every label has a small, closed set of values: route
templates, never paths; handler names the daemon knows, never execution or task ids.
Org ids label the per-org series, at most `org_series` of them (the rest are summed as
org="other"), so the series count stays bounded however many orgs there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import hdrs, web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from taskflowd import __version__
from taskflowd.api.context import Report
from taskflowd.api.middleware import route_template
from taskflowd.audit.model import AuditEvent
from taskflowd.background import Supervisor
from taskflowd.events import Event, EventBus
from taskflowd.store.errors import StoreUnavailable

log = logging.getLogger("taskflowd.metrics")

PREFIX = "taskflow_"
QUEUE_DEPTH = "taskflow_queue_depth"
ORG_QUEUE_DEPTH = "taskflow_org_queue_depth"
QUEUED_STATES = ("PENDING", "RETRYING", "PROCESSING")
"""Execution states that count as queue depth; final states are history, not backlog."""

OUTCOMES = ("COMPLETED", "RETRY", "DEAD", "CANCELLED")
RUN_STATUSES = ("SUCCEEDED", "FAILED", "CANCELLED")
EVENT_BUFFER = 100_000
"""Events the counters may lag behind before the oldest are lost (bounded memory)."""
OTHER = "other"
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LABEL_WORD = re.compile(r"[a-z][a-z0-9_]{0,39}")
_PROBLEM_JSON = "application/problem+json"
_ORG_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

JOB_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
QUEUE_WAIT_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
LATENESS_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
HTTP_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class DepthSource(Protocol):
    """What metrics need from a job queue: execution counts by state."""

    async def depths(self) -> Mapping[Any, int]: ...


OrgDepthReader = Callable[[], Awaitable[Mapping[str, Mapping[Any, int]]]]
"""Queued and running executions by state, per org id."""


def busiest(
    by_org: Mapping[str, Mapping[str, int]], limit: int
) -> tuple[list[str], dict[str, int]]:
    """The `limit` orgs with the most queued and running jobs (most first, then by id),
    and the others' counts by state summed."""
    ranked = sorted(by_org, key=lambda o: (-sum(by_org[o].values()), o))
    rest: dict[str, int] = {}
    for org in ranked[limit:]:
        for state, n in by_org[org].items():
            rest[state] = rest.get(state, 0) + n
    return ranked[:limit], rest


def label_word(value: object) -> str:
    """`value` when it is a short lowercase word, else "other": labels stay a closed set."""
    text = str(value).lower()
    return text if _LABEL_WORD.fullmatch(text) else OTHER


class _QueueDepthCollector(Collector):
    """Yields the last depth snapshot; the scrape handler refreshes it before collecting."""

    def __init__(self, snapshot: Callable[[], Mapping[str, int] | None]) -> None:
        self._snapshot = snapshot

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            QUEUE_DEPTH,
            "Executions waiting or running, by state (the whole cluster's queue).",
            labels=["state"],
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        family = self._family()
        for state in QUEUED_STATES:
            family.add_metric([state.lower()], snapshot.get(state, 0))
        return [family]


def _summed(by_org: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for counts in by_org.values():
        for state, n in counts.items():
            totals[state] = totals.get(state, 0) + n
    return totals


class _OrgDepthCollector(Collector):
    """Queue depth by org: the busiest `limit` orgs by id, the rest as org="other"."""

    def __init__(
        self, snapshot: Callable[[], Mapping[str, Mapping[str, int]] | None], limit: int
    ) -> None:
        self._snapshot = snapshot
        self._limit = limit

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            ORG_QUEUE_DEPTH,
            "Executions waiting or running, by org and state (processing: running now); "
            'the orgs beyond metrics.org_series summed as org="other".',
            labels=["org", "state"],
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot()
        if snapshot is None:
            return []
        family = self._family()
        named, rest = busiest(snapshot, self._limit)
        for org, counts in [*((o, snapshot[o]) for o in named), (OTHER, rest)]:
            for state in QUEUED_STATES:
                family.add_metric([org, state.lower()], counts.get(state, 0))
        return [family]


class _WithoutCreated(Collector):
    """The registry without `*_created` samples: creation timestamps double the series
    count and no dashboard here reads them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class Metrics:
    """The daemon's metrics; `start()` follows the event bus until `stop()`.

    Job outcomes, run times, queue waits, retries, dead letters, cron ticks and lateness
    come from `execution`, `tick` and `misfire` events. `refresh()` re-reads queue depth
    at most once per `depth_cache_s`; call it before rendering the registry.
    `plugin_failures` names the handler plugins that failed to load (a gauge of 1 each).
    With `org_depths`, depth is also read per org (for /api/v1/stats, and as series for
    the `org_series` busiest orgs); outcomes are counted per org for the first
    `org_series` orgs seen (0: no per-org series).
    """

    def __init__(
        self,
        events: EventBus,
        supervisor: Supervisor,
        *,
        queue: DepthSource | None = None,
        org_depths: OrgDepthReader | None = None,
        org_series: int = 100,
        running_jobs: Callable[[], int] | None = None,
        handler_names: Iterable[str] = (),
        plugin_failures: Iterable[str] = (),
        version: str = __version__,
        depth_cache_s: float = 1.0,
        depth_timeout_s: float = 2.0,
    ) -> None:
        self._events = events
        self._supervisor = supervisor
        self._queue = queue
        self._handlers = frozenset(handler_names)
        self._depth_cache_s = depth_cache_s
        self._depth_timeout_s = depth_timeout_s
        self._depths: dict[str, int] | None = None
        self._org_depth_reader = org_depths
        self._org_depths: dict[str, dict[str, int]] | None = None
        self._org_series = org_series
        self._org_labels: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}
        self._depths_read_at: float | None = None
        self._depth_lock = asyncio.Lock()
        self._subscription: contextlib.AsyncExitStack | None = None
        self._inbox: asyncio.Queue[Event] | None = None

        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._build(version, running_jobs)
        failed = Gauge(
            "taskflow_handler_plugin_failures",
            "Handler plugins that failed to load on this node, by handler name (1 each).",
            ["name"],
            registry=self.registry,
        )
        for name in plugin_failures:  # entry-point names of installed distributions
            failed.labels(name[:64]).set(1)
        self.registry.register(_QueueDepthCollector(lambda: self._depths))
        if org_series and org_depths is not None:
            self.registry.register(_OrgDepthCollector(lambda: self._org_depths, org_series))
        self._view = _WithoutCreated(self.registry)

    def _build(self, version: str, running_jobs: Callable[[], int] | None) -> None:
        r = self.registry
        self.jobs = Counter(
            "taskflow_jobs",
            "Job attempts finished, by outcome (COMPLETED, RETRY, DEAD, CANCELLED) and handler.",
            ["outcome", "handler"],
            registry=r,
        )
        self.org_jobs = Counter(
            "taskflow_org_jobs",
            "Job attempts finished, by org and outcome; orgs beyond the first "
            'metrics.org_series seen by this node are counted as org="other".',
            ["org", "outcome"],
            registry=r if self._org_series else None,
        )
        self.job_duration = Histogram(
            "taskflow_job_duration_seconds",
            "Run time of one job attempt, by handler.",
            ["handler"],
            buckets=JOB_DURATION_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "taskflow_job_queue_wait_seconds",
            "Time from a job being due to its attempt starting.",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "taskflow_job_retries", "Failed attempts scheduled for another try.", registry=r
        )
        self.dead_lettered = Counter(
            "taskflow_jobs_dead_lettered", "Jobs moved to the dead-letter queue.", registry=r
        )
        self.ticks = Counter("taskflow_cron_ticks", "Cron ticks enqueued.", registry=r)
        self.workflow_runs = Counter(
            "taskflow_workflow_runs",
            "Workflow runs finished, by status (SUCCEEDED, FAILED, CANCELLED).",
            ["status"],
            registry=r,
        )
        self.workflow_run_duration = Histogram(
            "taskflow_workflow_run_duration_seconds",
            "Time from a workflow run's start to its end.",
            buckets=JOB_DURATION_BUCKETS,
            registry=r,
        )
        self.workflow_step_wait = Histogram(
            "taskflow_workflow_step_wait_seconds",
            "Time from the end of a workflow step's last upstream step to its first start.",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.ticks_missed = Counter(
            "taskflow_cron_ticks_missed",
            "Cron ticks missed while nothing ran (before the misfire policy applied).",
            registry=r,
        )
        self.lateness = Histogram(
            "taskflow_scheduler_lateness_seconds",
            "How late a cron tick was enqueued after its scheduled instant.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "taskflow_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self._http_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.http_duration = Histogram(
            "taskflow_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "taskflow_auth_failures",
            "Requests refused authentication, by reason (the problem code).",
            ["reason"],
            registry=r,
        )
        self.rate_limited_requests = Counter(
            "taskflow_rate_limited",
            "Requests refused by a rate limit, by scope (login, user, address).",
            ["scope"],
            registry=r,
        )
        self.depth_errors = Counter(
            "taskflow_queue_depth_errors",
            "Scrapes that could not read the queue depth.",
            registry=r,
        )
        self.pruned_rows = Counter(
            "taskflow_pruned_rows",
            "Rows deleted by the pruner past their retention, by table.",
            ["table"],
            registry=r,
        )
        self.audit_events = Counter(
            "taskflow_audit_events",
            "Audit events written by this node, by action (task.updated, auth.login_failed, …).",
            ["action"],
            registry=r,
        )
        self.prune_duration = Gauge(
            "taskflow_prune_last_duration_seconds",
            "How long this node's last pruning pass took.",
            registry=r,
        )
        self.checkpoints = Counter(
            "taskflow_sqlite_checkpoints",
            "Background checkpoints of the SQLite write-ahead log, by outcome "
            "(complete, partial: readers still needed part of it, failed).",
            ["outcome"],
            registry=r,
        )
        self.wal_pages = Gauge(
            "taskflow_sqlite_wal_pages",
            "Pages in the SQLite write-ahead log at the last background checkpoint.",
            registry=r,
        )
        self.checkpoint_duration = Gauge(
            "taskflow_sqlite_checkpoint_last_duration_seconds",
            "How long the last background checkpoint of the SQLite log took.",
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "taskflow_webhook_deliveries",
            "Webhook delivery attempts, by outcome (succeeded, failed, gone, timeout, refused, "
            "unreachable).",
            ["outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "taskflow_webhook_delivery_duration_seconds",
            "Time of one webhook delivery attempt, until the receiver's answer.",
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.webhook_disabled = Counter(
            "taskflow_webhook_endpoints_disabled",
            "Webhook endpoints disabled by delivery, by reason (gone: a 410; failing).",
            ["reason"],
            registry=r,
        )
        running = Gauge("taskflow_jobs_running", "Jobs running on this node.", registry=r)
        if running_jobs is not None:
            running.set_function(running_jobs)
        info = Gauge(
            "taskflow_build_info",
            "Version of taskflowd and Python.",
            ["version", "python"],
            registry=r,
        )
        info.labels(version, platform.python_version()).set(1)
        for handler in sorted(self._handlers):
            for outcome in OUTCOMES:
                self.jobs.labels(outcome, handler)

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to the event bus now (no event published after this is missed) and
        consume it in the supervised task `metrics.events`."""
        stack = contextlib.AsyncExitStack()
        # Own events only (each node counts its own), with room for a burst: one group
        # commit publishes an event per outcome at once.
        self._inbox = await stack.enter_async_context(
            self._events.subscribe(remote=False, buffer=EVENT_BUFFER)
        )
        self._subscription = stack
        self._supervisor.spawn("metrics.events", self._consume)

    async def stop(self) -> None:
        await self._supervisor.cancel("metrics.events")
        if self._subscription is not None:
            await self._subscription.aclose()
        self._subscription = None
        self._inbox = None

    async def _consume(self) -> None:
        inbox = self._inbox
        if inbox is None:
            return
        while True:
            self.record_event(await inbox.get())

    # --- recording ---------------------------------------------------------------------
    def _handler_label(self, data: Mapping[str, Any]) -> str:
        name = data.get("handler")
        if not isinstance(name, str) or not name:
            return "unknown"
        return name if name in self._handlers else OTHER

    def record_event(self, event: Event) -> None:
        """Count one bus event; events of other kinds, and other nodes' events (each node
        counts its own), are ignored."""
        if event.origin is not None:
            return
        data = event.data
        if event.kind == "execution":
            self._record_outcome(data)
        elif event.kind == "tick":
            self.ticks.inc()
            lateness = data.get("lateness")
            if isinstance(lateness, int | float):
                self.lateness.observe(max(0.0, float(lateness)))
        elif event.kind == "workflow_run.finished":
            self._record_run(data)
        elif event.kind == "misfire":
            missed = data.get("missed")
            if isinstance(missed, int) and missed > 0:
                self.ticks_missed.inc(missed)

    def _record_run(self, data: Mapping[str, Any]) -> None:
        status = data.get("status")
        if status not in RUN_STATUSES:
            return
        self.workflow_runs.labels(status).inc()
        duration_s = data.get("durationS")
        if isinstance(duration_s, int | float) and duration_s >= 0:
            self.workflow_run_duration.observe(float(duration_s))

    def _record_outcome(self, data: Mapping[str, Any]) -> None:
        outcome = data.get("outcome")
        if outcome not in OUTCOMES:
            return  # a state change that is not the end of an attempt (e.g. PROCESSING)
        handler = self._handler_label(data)
        self._child(self.jobs, outcome, handler).inc()
        if self._org_series:
            self._child(self.org_jobs, self._org_label(data.get("orgId")), outcome).inc()
        duration_ms = data.get("durationMs")
        if isinstance(duration_ms, int | float) and duration_ms >= 0:
            self._child(self.job_duration, handler).observe(duration_ms / 1000)
        wait_s = data.get("waitS")
        if isinstance(wait_s, int | float) and wait_s >= 0:
            self.queue_wait.observe(float(wait_s))
        step_wait_s = data.get("stepWaitS")
        if isinstance(step_wait_s, int | float) and step_wait_s >= 0:
            self.workflow_step_wait.observe(float(step_wait_s))
        if outcome == "RETRY":
            self.retries.inc()
        elif outcome == "DEAD":
            self.dead_lettered.inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: every job's end counts in these, and
        `labels` checks and locks on each call."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _org_label(self, org_id: object) -> str:
        """`org_id` while fewer than `org_series` orgs have a label, else "other"."""
        if not isinstance(org_id, str) or not _ORG_ID.fullmatch(org_id):
            return OTHER
        if org_id in self._org_labels:
            return org_id
        if len(self._org_labels) >= self._org_series:
            return OTHER
        self._org_labels.add(org_id)
        return org_id

    def audited(self, event: AuditEvent) -> None:
        """Count one audit event this node wrote (the journal calls it after commit)."""
        self.audit_events.labels(event.action).inc()

    def pruned(self, table: str, rows: int) -> None:
        self.pruned_rows.labels(label_word(table)).inc(rows)

    def prune_pass(self, seconds: float) -> None:
        self.prune_duration.set(seconds)

    def checkpointed(self, outcome: str, log_pages: int, seconds: float) -> None:
        self.checkpoints.labels(label_word(outcome)).inc()
        if outcome != "failed":
            self.wal_pages.set(log_pages)
        self.checkpoint_duration.set(seconds)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self.webhook_deliveries.labels(label_word(outcome)).inc()
        self.webhook_latency.observe(seconds)

    def webhook_endpoint_disabled(self, reason: str) -> None:
        self.webhook_disabled.labels(label_word(reason)).inc()

    def observe_request(self, route: str, method: str, status: int, duration_s: float) -> None:
        label = method if method in _METHODS else method.upper()
        if label not in _METHODS:
            label = OTHER.upper()
        key = (route, label, status)
        series = self._http_series.get(key)
        if series is None:
            # Label look-ups are the costly part of an observation: keep each series'
            # children (routes are templates and methods a fixed set: it stays small).
            series = self._http_series[key] = (
                self.http_requests.labels(route, label, str(status)),
                self.http_duration.labels(route, label),
            )
        count, latency = series
        count.inc()
        if status != 101:  # a WebSocket's lifetime is not a request latency
            latency.observe(duration_s)

    def auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(label_word(reason)).inc()

    def rate_limited(self, scope: str) -> None:
        self.rate_limited_requests.labels(label_word(scope)).inc()

    # --- queue depth -------------------------------------------------------------------
    async def refresh(self) -> None:
        """Re-read queue depth unless the snapshot is fresh; a failed or slow read drops
        the depth series from the next scrape (absent, rather than stale) and is counted."""
        if self._queue is None:
            return
        async with self._depth_lock:
            now = time.monotonic()
            if self._depths_read_at is not None and now - self._depths_read_at < (
                self._depth_cache_s
            ):
                return
            try:
                async with asyncio.timeout(self._depth_timeout_s):
                    by_org = await self._read_org_depths()
                    # One query: the totals are the orgs' sums when orgs are read.
                    found = await self._queue.depths() if by_org is None else _summed(by_org)
            except Exception as exc:
                self._depths = self._org_depths = None
                self.depth_errors.inc()
                log.warning("could not read the queue depth: %s", type(exc).__name__)
            else:
                self._depths = {str(state): int(n) for state, n in found.items()}
                self._org_depths = by_org
            self._depths_read_at = time.monotonic()

    async def _read_org_depths(self) -> dict[str, dict[str, int]] | None:
        if self._org_depth_reader is None:
            return None
        found = await self._org_depth_reader()
        return {
            org: {str(state): int(n) for state, n in counts.items()}
            for org, counts in found.items()
        }

    async def queue_depths(self) -> dict[str, int]:
        """Executions by state (every state) from the shared snapshot, so API readers and
        scrapers together cost one query per `depth_cache_s`. Raises StoreUnavailable when
        the queue cannot be read."""
        if self._queue is None:
            return {}
        await self.refresh()
        if self._depths is None:
            raise StoreUnavailable("the job queue does not answer; try again shortly")
        return dict(self._depths)

    @property
    def reads_org_depths(self) -> bool:
        """Whether `org_queue_depths` has a source."""
        return self._queue is not None and self._org_depth_reader is not None

    async def org_queue_depths(self) -> dict[str, dict[str, int]]:
        """Queued and running executions by state per org id, from the shared snapshot
        (empty without an org depth reader). Raises StoreUnavailable when unreadable."""
        if not self.reads_org_depths:
            return {}
        await self.refresh()
        if self._org_depths is None:
            raise StoreUnavailable("the job queue does not answer; try again shortly")
        return {org: dict(counts) for org, counts in self._org_depths.items()}

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a scrape (OpenMetrics when `accept` asks for it, else the
        Prometheus text format) and its content type. Call `refresh()` first."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._view), content_type

    def exposed_names(self) -> set[str]:
        """Every sample name the registry can expose (for checks of dashboards and alerts)."""
        names: set[str] = {QUEUE_DEPTH, ORG_QUEUE_DEPTH}
        for family in self._view.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        return names


def _problem_code(response: web.StreamResponse) -> str:
    if not isinstance(response, web.Response) or response.content_type != _PROBLEM_JSON:
        return OTHER
    body = response.body
    if not isinstance(body, bytes):
        return OTHER
    try:
        code = orjson.loads(body).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        return OTHER
    return label_word(code)


def _rate_scope(request: web.Request, route: str) -> str:
    if route.startswith("/api/v1/auth/login"):
        return "login"
    return "user" if hdrs.AUTHORIZATION in request.headers else "address"


def http_report(metrics: Metrics) -> Report:
    """A request report (see `taskflowd.api.middleware.front_middleware`) counting every
    request by route template, method and status, with its latency; 401s count as auth
    failures (reason: the problem code) and 429s as rate-limited requests."""

    def record(
        request: web.Request, status: int, seconds: float, response: web.StreamResponse | None
    ) -> None:
        route = route_template(request, UNMATCHED)
        metrics.observe_request(route, request.method, status, seconds)
        if status == 401:
            metrics.auth_failure(_problem_code(response) if response is not None else OTHER)
        elif status == 429:
            metrics.rate_limited(_rate_scope(request, route))

    return record
