"""Metrics follow the engine: jobs run, the /metrics scrape changes accordingly."""

from __future__ import annotations

import platform
import uuid
from collections.abc import Mapping
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from taskflowd import __version__
from taskflowd.domain.entities import utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskType
from tests.integration.engine.harness import spec
from tests.integration.ops.conftest import OpsStack
from tests.integration.queue.polling import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(stack: OpsStack, headers: Mapping[str, str] | None = None) -> Samples:
    response = await stack.client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_job_outcomes_durations_and_waits_are_counted(make_stack) -> None:
    stack = await make_stack()
    before = await scrape(stack)
    assert value(before, "taskflow_jobs_total", outcome="COMPLETED", handler="echo") == 0
    info = [(dict(labels), v) for (name, labels), v in before.items() if name.endswith("_info")]
    assert ({"version": __version__, "python": platform.python_version()}, 1.0) in info

    admin, _ = await stack.sign_up(f"ops-{uuid.uuid4().hex[:8]}@example.com")
    for n in range(3):
        await stack.engine.tasks.create(admin, spec(payload={"n": n}))
    failing = await stack.engine.tasks.create(
        admin, spec(handler="fail", payload={"message": "no"}, max_retries=1, backoff_ms=10)
    )
    await stack.engine.wait_until_final(failing.id)

    async def settled() -> Samples | None:
        found = await scrape(stack)
        done = (
            value(found, "taskflow_jobs_total", outcome="COMPLETED", handler="echo") == 3
            and value(found, "taskflow_jobs_dead_lettered_total") == 1
        )
        return found if done else None

    after = await eventually(settled, "/metrics to count 3 completed and 1 dead job")
    assert value(after, "taskflow_jobs_total", outcome="RETRY", handler="fail") == 1
    assert value(after, "taskflow_jobs_total", outcome="DEAD", handler="fail") == 1
    assert value(after, "taskflow_job_retries_total") == 1
    assert value(after, "taskflow_job_duration_seconds_count", handler="echo") == 3
    assert value(after, "taskflow_job_duration_seconds_count", handler="fail") == 2
    assert value(after, "taskflow_job_queue_wait_seconds_count") == 5
    # Nothing is left queued: the depth gauge, read at scrape time, says so.
    for state in ("pending", "retrying", "processing"):
        assert ("taskflow_queue_depth", frozenset({("state", state)})) in after
        assert value(after, "taskflow_queue_depth", state=state) == 0
    assert value(after, "taskflow_jobs_running") == 0
    # The scrapes themselves were counted under the route template.
    assert value(
        after, "taskflow_http_requests_total", route="/metrics", method="GET", status="200"
    )
    assert value(after, "process_resident_memory_bytes") > 0


async def test_attempts_ended_by_an_expired_lease_are_counted(make_stack) -> None:
    """A node died holding two jobs: the reaper queues one again (a RETRY) and gives up
    on the other, already rescued once (DEAD)."""
    stack = await make_stack(worker={"max_rescues": 1})
    admin, _ = await stack.sign_up(f"ops-{uuid.uuid4().hex[:8]}@example.com")
    held = []
    for rescues in (0, 1):
        task = await stack.engine.tasks.create(admin, spec(TaskType.DELAYED, delay_ms=3_600_000))
        [job] = await stack.engine.executions(task.id)
        await stack.engine.store.db.execute(
            "UPDATE job_executions SET status = 'PROCESSING', attempts = 1, fence = fence + 1, "
            "lease_owner = 'dead-node', lease_expires_at = $1, started_at = $1, run_at = $1, "
            "rescues = $2 WHERE id = $3",
            utcnow() - timedelta(seconds=30),
            rescues,
            job.id,
        )
        held.append(job)

    async def counted() -> Samples | None:
        found = await scrape(stack)
        done = value(found, "taskflow_jobs_total", outcome="DEAD", handler="echo") == 1
        return found if done else None

    after = await eventually(counted, "/metrics to count the reaped jobs")
    assert value(after, "taskflow_jobs_total", outcome="RETRY", handler="echo") == 1
    assert value(after, "taskflow_jobs_dead_lettered_total") == 1
    rescued = await stack.engine.wait_for_status(held[0].id, ExecutionStatus.COMPLETED)
    assert rescued.attempts == 2


async def test_queue_depth_shows_waiting_jobs(make_stack) -> None:
    stack = await make_stack()
    admin, _ = await stack.sign_up(f"depth-{uuid.uuid4().hex[:8]}@example.com")
    await stack.engine.worker.stop()  # nothing claims: jobs stay PENDING
    for _ in range(4):
        await stack.engine.tasks.create(admin, spec(type=TaskType.DELAYED, delay_ms=3_600_000))

    async def four_pending() -> bool:
        return value(await scrape(stack), "taskflow_queue_depth", state="pending") == 4

    await eventually(four_pending, "the depth gauge to show 4 pending jobs")


async def test_cron_ticks_and_lateness_are_counted(make_stack) -> None:
    stack = await make_stack()
    admin, _ = await stack.sign_up(f"cron-{uuid.uuid4().hex[:8]}@example.com")
    task = await stack.engine.tasks.create(
        admin, spec(type=TaskType.RECURRING, cron_expression="* * * * * *")
    )

    async def ticked() -> Samples | None:
        found = await scrape(stack)
        return found if value(found, "taskflow_cron_ticks_total") >= 2 else None

    found = await eventually(ticked, "two cron ticks to be counted")
    assert value(found, "taskflow_scheduler_lateness_seconds_count") >= 2
    await stack.engine.tasks.pause(admin, task.id)


async def test_http_metrics_use_route_templates_and_count_auth_failures(make_stack) -> None:
    stack = await make_stack()
    for _ in range(2):
        response = await stack.client.get(f"/api/v1/users/{uuid.uuid4()}")
        assert response.status == 401
    response = await stack.client.get("/no/such/path")
    assert response.status == 404
    response = await stack.client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong password"}
    )
    assert response.status == 401

    found = await scrape(stack)
    assert (
        value(
            found,
            "taskflow_http_requests_total",
            route="/api/v1/users/{id}",
            method="GET",
            status="401",
        )
        == 2
    )
    assert value(
        found, "taskflow_http_requests_total", route="unmatched", method="GET", status="404"
    )
    assert value(found, "taskflow_auth_failures_total", reason="unauthorized") == 2
    assert value(found, "taskflow_auth_failures_total", reason="invalid_credentials") == 1
    # Never a raw path or an id in a label.
    for name, labels in found:
        for _, label_value in labels:
            assert "/no/such/path" not in label_value, (name, labels)
            assert not _looks_like_uuid(label_value), (name, labels)


async def test_metrics_token_is_required_when_configured(make_stack) -> None:
    stack = await make_stack(metrics_token="scrape-me-please")
    response = await stack.client.get("/metrics")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = await stack.client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert response.status == 401
    found = await scrape(stack, {"Authorization": "Bearer scrape-me-please"})
    assert value(found, "taskflow_auth_failures_total", reason="invalid_token") == 1


def _looks_like_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def test_audit_events_are_counted_by_action(make_stack) -> None:
    stack = await make_stack()
    stack.store.journal.on_written(stack.metrics.audited)  # as the daemon wires it
    for _ in range(2):
        response = await stack.client.post(
            "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong one"}
        )
        assert response.status == 401
    found = await scrape(stack)
    assert value(found, "taskflow_audit_events_total", action="auth.login_failed") == 2
