"""Response bodies of the operations endpoints: readiness and statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from taskflowd.api.schemas import ResponseModel
from taskflowd.services.stats import Overview, Window


class CheckOut(ResponseModel):
    ok: bool
    latency_ms: float = Field(description="Time the check took")
    reason: str | None = Field(description="Why it failed; null when ok")


class ReadyOut(ResponseModel):
    """The same shape answers 200 (every check ok) and 503 (at least one failed)."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckOut] = Field(
        description="One entry per check: database, queue, and where they apply scheduler, "
        "redis, handlers"
    )


class WindowOut(ResponseModel):
    seconds: int
    finished: int = Field(description="Executions that reached a final state")
    completed: int
    failed: int
    cancelled: int
    per_second: float = Field(description="Finished executions per second")
    success_rate: float | None = Field(
        description="completed / (completed + failed); null when neither happened"
    )


class RunTimesOut(ResponseModel):
    window_s: int
    samples: int = Field(description="Finished attempts the percentiles are computed from")
    p50_ms: float | None
    p95_ms: float | None


class NodeOut(ResponseModel):
    id: str
    host: str
    roles: list[str]
    version: str
    started_at: datetime
    last_heartbeat: datetime
    alive: bool = Field(description="Heartbeat seen within cluster.node_ttl_s")


class OrgStatsOut(ResponseModel):
    org_id: str
    slug: str | None
    name: str | None
    depths: dict[str, int] = Field(description="Queued and running executions by state")
    last_hour: WindowOut = Field(description="Executions that ended in the last hour")


class StatsOut(ResponseModel):
    generated_at: datetime
    scope: Literal["all", "own"] = Field(
        description="all: the cluster's (a site admin naming no org); own: one org's"
    )
    org_id: str | None = Field(description="The org of every figure; null for the cluster's")
    depths: dict[str, int] = Field(description="Executions by state (queued and running)")
    throughput: dict[str, WindowOut] = Field(description="Keyed by window: 1m, 5m, 1h")
    run_time: RunTimesOut
    nodes: list[NodeOut]
    tables: dict[str, int] | None = Field(
        description="Rows per table (PostgreSQL: the planner's estimates); admins only"
    )
    orgs: list[OrgStatsOut] | None = Field(
        description="The busiest orgs (up to 500), most queued and running jobs first; "
        "scope all only"
    )


def _window_out(w: Window) -> WindowOut:
    return WindowOut(
        seconds=w.seconds,
        finished=w.finished,
        completed=w.completed,
        failed=w.failed,
        cancelled=w.cancelled,
        per_second=round(w.per_second, 6),
        success_rate=None if w.success_rate is None else round(w.success_rate, 6),
    )


def stats_out(overview: Overview) -> StatsOut:
    return StatsOut(
        generated_at=overview.generated_at,
        scope="all" if overview.scope == "all" else "own",
        org_id=overview.org_id,
        depths=overview.depths,
        throughput={w.name: _window_out(w) for w in overview.windows},
        run_time=RunTimesOut(
            window_s=overview.run_times.window_s,
            samples=overview.run_times.samples,
            p50_ms=overview.run_times.p50_ms,
            p95_ms=overview.run_times.p95_ms,
        ),
        nodes=[
            NodeOut(
                id=s.node.id,
                host=s.node.host,
                roles=list(s.node.roles),
                version=s.node.version,
                started_at=s.node.started_at,
                last_heartbeat=s.node.last_heartbeat,
                alive=s.alive,
            )
            for s in overview.nodes
        ],
        tables=overview.tables,
        orgs=None
        if overview.orgs is None
        else [
            OrgStatsOut(
                org_id=o.org_id,
                slug=o.slug,
                name=o.name,
                depths=o.depths,
                last_hour=_window_out(o.last_hour),
            )
            for o in overview.orgs
        ],
    )
