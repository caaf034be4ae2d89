"""Operations endpoints: Prometheus metrics, readiness, and statistics for the dashboard.

`/metrics` and `/ready` are public and never rate limited (scrapers and probes call them
often); `/metrics` asks for `Authorization: Bearer <metrics.token>` when one is set.
The handlers read their collaborators from `request.app[OPS_KEY]`; `mount(ctx)` sets it
and registers the routes in one step.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web

from taskflowd.api.openapi import Access, ApiRegistry, Operation
from taskflowd.api.responses import json_response
from taskflowd.api.security import bearer_token, unauthorized
from taskflowd.metrics import Metrics
from taskflowd.queue.base import JobQueue
from taskflowd.services.readiness import Probe, Readiness, Report
from taskflowd.services.stats import StatsService
from taskflowd.store.sql import SqlStore

VIEWS = "taskflowd.api.views.ops"
"""The statistics handler, imported on its first request (start-up, issue 12)."""
READY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class OpsContext:
    """What the operations endpoints need; built once by the composition root."""

    metrics: Metrics
    readiness: Readiness
    stats: StatsService
    metrics_token: str = ""

    @classmethod
    def build(
        cls,
        store: SqlStore,
        queue: JobQueue,
        metrics: Metrics,
        *,
        metrics_token: str = "",
        node_ttl_s: float = 30.0,
        ready_timeout_s: float = READY_TIMEOUT_S,
        checks: Sequence[tuple[str, Probe]] = (),
    ) -> OpsContext:
        """Readiness pings the database and asks the queue for its next due job (a read
        that touches whichever backend holds the queue), then runs `checks` (e.g. the
        cluster's); stats read the store's database and share the metrics' queue-depth
        snapshot."""
        readiness = Readiness(
            [("database", store.ping), ("queue", queue.next_due), *checks],
            timeout_s=ready_timeout_s,
        )
        org_depths = metrics.org_queue_depths if metrics.reads_org_depths else None
        stats = StatsService(
            store.db, store, metrics.queue_depths, node_ttl_s, org_depths=org_depths
        )
        return cls(metrics, readiness, stats, metrics_token)


OPS_KEY = web.AppKey("taskflowd.api.ops", OpsContext)


def _check_metrics_token(request: web.Request, expected: str) -> None:
    if not expected:
        return
    given = bearer_token(request)
    if given is None:
        raise unauthorized("/metrics needs 'Authorization: Bearer <token>'.", token_given=False)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise unauthorized("The metrics token is not the configured one.", token_given=True)


async def scrape_metrics(request: web.Request) -> web.Response:
    ctx = request.app[OPS_KEY]
    _check_metrics_token(request, ctx.metrics_token)
    await ctx.metrics.refresh()
    body, content_type = ctx.metrics.render(request.headers.get(hdrs.ACCEPT))
    return web.Response(
        body=body,
        headers={hdrs.CONTENT_TYPE: content_type, hdrs.CACHE_CONTROL: "no-store"},
    )


def ready_body(report: Report) -> dict[str, Any]:
    """The body `ReadyOut` documents, written without pydantic: probes ask from the start,
    before any request has needed it (start-up, issue 12)."""
    checks = {
        name: {"ok": c.ok, "latencyMs": float(c.latency_ms), "reason": c.reason}
        for name, c in report.checks.items()
    }
    return {"status": "ready" if report.ready else "unavailable", "checks": checks}


async def readiness(request: web.Request) -> web.Response:
    report = await request.app[OPS_KEY].readiness.check()
    headers: dict[str, str] = {str(hdrs.CACHE_CONTROL): "no-store"}
    if not report.ready:
        headers[str(hdrs.RETRY_AFTER)] = "5"
    return json_response(ready_body(report), status=200 if report.ready else 503, headers=headers)


def install(api: ApiRegistry, *, stats: bool = True) -> None:
    """Register the routes (without /api/v1/stats unless `stats`); `app[OPS_KEY]` must be
    set before the app starts."""
    api.add(
        Operation(
            "GET",
            "/metrics",
            scrape_metrics,
            "Prometheus metrics (text format; OpenMetrics when asked for)",
            "operations",
            Access.PUBLIC,
            problems=(401,),
            rate_limited=False,
            description=(
                "Answers the Prometheus text format (OpenMetrics when Accept asks for it), "
                "not JSON. When `metrics.token` is set, send `Authorization: Bearer <token>`."
            ),
        )
    )
    api.add(
        Operation(
            "GET",
            "/ready",
            readiness,
            "Readiness: every backend answers",
            "operations",
            Access.PUBLIC,
            response="schemas_ops.ReadyOut",
            rate_limited=False,
            description=(
                "200 when every check passes; 503 with the same body, naming the failing "
                "component and why, when one does not. Checked live on every call."
            ),
        )
    )
    if not stats:
        return
    api.add(
        Operation(
            "GET",
            "/api/v1/stats",
            "get_stats",
            "Queue depth, throughput, success rate, run-time percentiles and nodes",
            "operations",
            Access.USER,
            response="schemas_ops.StatsOut",
            description=(
                "In an org (the API key's, `X-Taskflow-Org`, or the default one), every "
                "figure is that org's. A site admin naming no org gets the cluster's "
                "totals, rows per table, and `orgs`: a breakdown of the busiest orgs "
                "(queued and running jobs, outcomes of the last hour)."
            ),
        ),
        VIEWS,
    )


def mount(ctx: OpsContext, *, stats: bool = True) -> Callable[[ApiRegistry], None]:
    """A route installer that also puts `ctx` on the app (for `ApiContext.extra_routes`)."""

    def install_ops(api: ApiRegistry) -> None:
        api.app[OPS_KEY] = ctx
        install(api, stats=stats)

    return install_ops
