"""Metrics without a database: events in, samples out; the depth cache; HTTP labels."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from taskflowd.api.middleware import front_middleware
from taskflowd.background import Supervisor
from taskflowd.events import Event, EventBus
from taskflowd.metrics import Metrics, http_report, label_word
from taskflowd.store.errors import StoreUnavailable
from tests.integration.queue.polling import DEADLINE_S, eventually

Client = TestClient[Any, Any]


class Depths:
    """A queue stand-in: counts reads, can fail or hang on demand."""

    def __init__(self) -> None:
        self.reads = 0
        self.fail = False
        self.hang = False
        self.values = {"PENDING": 3, "RETRYING": 1, "PROCESSING": 2, "COMPLETED": 99}

    async def depths(self) -> dict[str, int]:
        self.reads += 1
        if self.hang:
            await asyncio.sleep(DEADLINE_S * 10)
        if self.fail:
            raise ConnectionError("down")
        return dict(self.values)


def make_metrics(**kwargs: Any) -> Metrics:
    return Metrics(EventBus(), Supervisor(lambda name, exc: None), handler_names=["echo"], **kwargs)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_execution_events_become_outcomes_durations_and_waits() -> None:
    metrics = make_metrics()
    for data in (
        {"status": "PROCESSING"},  # not the end of an attempt
        {"outcome": "COMPLETED", "handler": "echo", "durationMs": 1500, "waitS": 0.2},
        {"outcome": "RETRY", "handler": "echo", "durationMs": 10, "waitS": 0.1},
        {"outcome": "DEAD", "handler": "echo", "durationMs": 10},
        {"outcome": "DEAD", "handler": "made-up-by-a-plugin"},
        {"outcome": "CANCELLED"},
        {"outcome": "EXPLODED", "handler": "echo"},  # unknown outcome: ignored
        {"outcome": "COMPLETED", "handler": "echo", "durationMs": "fast", "waitS": -1},
    ):
        metrics.record_event(Event("execution", data))
    assert sample(metrics, "taskflow_jobs_total", outcome="COMPLETED", handler="echo") == 2
    assert sample(metrics, "taskflow_jobs_total", outcome="DEAD", handler="other") == 1
    assert sample(metrics, "taskflow_jobs_total", outcome="CANCELLED", handler="unknown") == 1
    assert sample(metrics, "taskflow_job_retries_total") == 1
    assert sample(metrics, "taskflow_jobs_dead_lettered_total") == 2
    assert sample(metrics, "taskflow_job_duration_seconds_count", handler="echo") == 3
    assert sample(metrics, "taskflow_job_duration_seconds_sum", handler="echo") == 1.52
    assert sample(metrics, "taskflow_job_queue_wait_seconds_count") == 2


def test_tick_and_misfire_events() -> None:
    metrics = make_metrics()
    metrics.record_event(Event("tick", {"taskId": "t", "lateness": 0.3}))
    metrics.record_event(Event("tick", {"taskId": "t", "lateness": 0.0}))
    metrics.record_event(Event("misfire", {"taskId": "t", "missed": 4}))
    metrics.record_event(Event("misfire", {"taskId": "t", "missed": "many"}))
    metrics.record_event(Event("something-else", {}))
    assert sample(metrics, "taskflow_cron_ticks_total") == 2
    assert sample(metrics, "taskflow_cron_ticks_missed_total") == 4
    assert sample(metrics, "taskflow_scheduler_lateness_seconds_count") == 2
    assert sample(metrics, "taskflow_scheduler_lateness_seconds_bucket", le="0.25") == 1


def test_workflow_run_events() -> None:
    metrics = make_metrics()
    metrics.record_event(Event("workflow_run.finished", {"status": "SUCCEEDED", "durationS": 2}))
    metrics.record_event(Event("workflow_run.finished", {"status": "FAILED", "durationS": 0.5}))
    metrics.record_event(Event("workflow_run.finished", {"status": "RUNNING"}))
    assert sample(metrics, "taskflow_workflow_runs_total", status="SUCCEEDED") == 1
    assert sample(metrics, "taskflow_workflow_runs_total", status="FAILED") == 1
    assert sample(metrics, "taskflow_workflow_run_duration_seconds_count") == 2
    assert sample(metrics, "taskflow_workflow_run_duration_seconds_sum") == 2.5


def test_workflow_step_waits() -> None:
    metrics = make_metrics()
    step = {"outcome": "COMPLETED", "handler": "echo", "waitS": 0.5, "durationMs": 3}
    metrics.record_event(Event("execution", {**step, "stepWaitS": 0.02}))
    metrics.record_event(Event("execution", {**step, "stepWaitS": None}))  # not a step
    metrics.record_event(Event("execution", step))
    assert sample(metrics, "taskflow_workflow_step_wait_seconds_count") == 1
    assert sample(metrics, "taskflow_workflow_step_wait_seconds_sum") == 0.02
    assert sample(metrics, "taskflow_job_queue_wait_seconds_count") == 3


async def test_events_published_right_after_start_are_counted() -> None:
    events = EventBus()
    supervisor = Supervisor(lambda name, exc: None)
    metrics = Metrics(events, supervisor)
    await metrics.start()
    events.publish("execution", outcome="COMPLETED", handler="echo", durationMs=1)
    try:

        async def counted() -> bool:
            return sample(metrics, "taskflow_jobs_total", outcome="COMPLETED", handler="other") == 1

        await eventually(counted, "the event to be counted")
    finally:
        await metrics.stop()
    assert events.subscriber_count == 0
    assert supervisor.running() == []


async def test_queue_depth_is_cached_and_dropped_when_unreadable() -> None:
    depths = Depths()
    metrics = make_metrics(queue=depths, depth_cache_s=3600, depth_timeout_s=0.05)
    await metrics.refresh()
    await metrics.refresh()
    assert depths.reads == 1  # the second scrape used the snapshot
    assert sample(metrics, "taskflow_queue_depth", state="pending") == 3
    assert sample(metrics, "taskflow_queue_depth", state="processing") == 2
    assert sample(metrics, "taskflow_queue_depth", state="completed") is None  # history

    for failure in ("fail", "hang"):
        fresh = make_metrics(queue=depths, depth_cache_s=0, depth_timeout_s=0.05)
        setattr(depths, failure, True)
        await fresh.refresh()
        setattr(depths, failure, False)
        assert sample(fresh, "taskflow_queue_depth", state="pending") is None, failure
        assert sample(fresh, "taskflow_queue_depth_errors_total") == 1
        await fresh.refresh()
        assert sample(fresh, "taskflow_queue_depth", state="pending") == 3


async def test_queue_depths_for_the_api_share_the_snapshot() -> None:
    depths = Depths()
    metrics = make_metrics(queue=depths, depth_cache_s=3600)
    assert (await metrics.queue_depths())["COMPLETED"] == 99  # every state, for /stats
    await metrics.refresh()
    assert depths.reads == 1
    failing = make_metrics(queue=depths, depth_cache_s=0)
    depths.fail = True
    with pytest.raises(StoreUnavailable):
        await failing.queue_depths()
    assert await make_metrics().queue_depths() == {}


async def test_concurrent_scrapes_read_the_queue_once() -> None:
    depths = Depths()
    metrics = make_metrics(queue=depths, depth_cache_s=3600)
    await asyncio.gather(*(metrics.refresh() for _ in range(20)))
    assert depths.reads == 1


def test_render_drops_created_series_and_speaks_openmetrics_when_asked() -> None:
    metrics = make_metrics(running_jobs=lambda: 7)
    text, content_type = metrics.render(None)
    assert content_type.startswith("text/plain")
    assert b"_created" not in text
    assert b"taskflow_jobs_running 7.0" in text
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_label_words_are_a_closed_set() -> None:
    assert label_word("invalid_token") == "invalid_token"
    assert label_word("Unauthorized") == "unauthorized"
    assert label_word("user:1234-5678") == "other"
    assert label_word("x" * 200) == "other"


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("unexpected")


async def test_middleware_labels_by_template_and_normalises_methods(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    metrics = make_metrics()
    app = web.Application(middlewares=[front_middleware((http_report(metrics),))])
    app.router.add_route("*", "/items/{id}", _ok)
    app.router.add_get("/boom", _boom)
    client = await aiohttp_client(app)
    for item in ("a", "b", "c"):
        assert (await client.get(f"/items/{item}")).status == 200
    assert (await client.request("PROPFIND", "/items/z")).status == 200
    assert (await client.get("/missing")).status == 404
    assert (await client.get("/boom")).status == 500

    def requests(route: str, method: str, status: str) -> float | None:
        return sample(
            metrics, "taskflow_http_requests_total", route=route, method=method, status=status
        )

    assert requests("/items/{id}", "GET", "200") == 3
    assert requests("/items/{id}", "OTHER", "200") == 1
    assert requests("unmatched", "GET", "404") == 1
    assert requests("/boom", "GET", "500") == 1
    assert (
        sample(
            metrics,
            "taskflow_http_request_duration_seconds_count",
            route="/items/{id}",
            method="GET",
        )
        == 3
    )


class OrgDepths:
    """A per-org depth source: three orgs, one much busier."""

    async def __call__(self) -> dict[str, dict[str, int]]:
        return {
            "org-a": {"PENDING": 100, "PROCESSING": 4},
            "org-b": {"PENDING": 5},
            "org-c": {"RETRYING": 2, "PROCESSING": 1},
        }


async def test_per_org_depth_names_the_busiest_orgs_and_sums_the_rest() -> None:
    metrics = make_metrics(queue=Depths(), org_depths=OrgDepths(), org_series=2)
    await metrics.refresh()
    assert sample(metrics, "taskflow_org_queue_depth", org="org-a", state="pending") == 100
    assert sample(metrics, "taskflow_org_queue_depth", org="org-a", state="processing") == 4
    assert sample(metrics, "taskflow_org_queue_depth", org="org-b", state="pending") == 5
    assert sample(metrics, "taskflow_org_queue_depth", org="org-c", state="retrying") is None
    assert sample(metrics, "taskflow_org_queue_depth", org="other", state="retrying") == 2
    assert sample(metrics, "taskflow_org_queue_depth", org="other", state="processing") == 1
    assert (await metrics.org_queue_depths())["org-c"] == {"RETRYING": 2, "PROCESSING": 1}


def test_outcomes_by_org_label_a_bounded_number_of_orgs() -> None:
    metrics = make_metrics(org_series=2)
    for org in ("org-a", "org-b", "org-c", "org-a", None, "not an id!"):
        metrics.record_event(Event("execution", {"outcome": "COMPLETED", "orgId": org}))
    assert sample(metrics, "taskflow_org_jobs_total", org="org-a", outcome="COMPLETED") == 2
    assert sample(metrics, "taskflow_org_jobs_total", org="org-b", outcome="COMPLETED") == 1
    assert sample(metrics, "taskflow_org_jobs_total", org="other", outcome="COMPLETED") == 3


async def test_per_org_metrics_can_be_turned_off() -> None:
    metrics = make_metrics(queue=Depths(), org_depths=OrgDepths(), org_series=0)
    await metrics.refresh()
    metrics.record_event(Event("execution", {"outcome": "COMPLETED", "orgId": "org-a"}))
    text, _ = metrics.render(None)
    assert b"taskflow_org_" not in text
    assert (await metrics.org_queue_depths())["org-b"] == {"PENDING": 5}, "still for /stats"


async def test_with_orgs_read_the_totals_are_their_sums_in_one_read() -> None:
    depths = Depths()
    metrics = make_metrics(queue=depths, org_depths=OrgDepths())
    await metrics.refresh()
    assert depths.reads == 0
    assert sample(metrics, "taskflow_queue_depth", state="pending") == 105
    assert sample(metrics, "taskflow_queue_depth", state="processing") == 5
    assert (await metrics.queue_depths())["RETRYING"] == 2
