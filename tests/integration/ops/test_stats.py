"""Statistics: windows, success rate and percentiles from job_executions, on every backend;
and GET /api/v1/stats scoped by role."""

from __future__ import annotations

import uuid
from datetime import timedelta

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.service import ensure_admin
from taskflowd.domain.entities import User
from taskflowd.domain.enums import ExecutionStatus, Role
from taskflowd.services.stats import StatsService, percentile
from taskflowd.store import SqlStore
from tests.integration.engine.harness import spec
from tests.integration.ops.conftest import PASSWORD, OpsStack
from tests.integration.store.factories import (
    insert_execution,
    make_execution,
    make_node,
    make_task,
    make_user,
    now,
)


async def _finished(
    store: SqlStore,
    owner: User,
    status: ExecutionStatus,
    ago: timedelta,
    duration_ms: int | None,
) -> None:
    task = make_task(owner.id, handler="echo", org_id=owner.default_org_id)
    await store.create_task(task)
    done = now() - ago
    execution = make_execution(task, status=status, attempts=1, started_at=done)
    await insert_execution(store.db, execution)
    await store.db.execute(
        "UPDATE job_executions SET completed_at = $1, duration_ms = $2 WHERE id = $3",
        done,
        duration_ms,
        execution.id,
    )


async def _no_depths() -> dict[str, int]:
    return {"PENDING": 7}


async def test_windows_success_rate_and_percentiles(store: SqlStore) -> None:
    alice = await store.create_user(make_user())
    bob = await store.create_user(make_user())
    seconds = timedelta(seconds=1)
    for ago_s, status, duration in (
        (20, ExecutionStatus.COMPLETED, 100),  # inside 1m, 5m, 1h
        (30, ExecutionStatus.FAILED, 200),  # inside 1m, 5m, 1h
        (200, ExecutionStatus.COMPLETED, 300),  # inside 5m, 1h
        (1800, ExecutionStatus.COMPLETED, 400),  # inside 1h
        (1900, ExecutionStatus.CANCELLED, None),  # inside 1h, no run time
        (7200, ExecutionStatus.COMPLETED, 9000),  # too old for any window
    ):
        await _finished(store, alice, status, ago_s * seconds, duration)
    await _finished(store, bob, ExecutionStatus.COMPLETED, 10 * seconds, 50_000)
    await store.upsert_node(make_node(last_heartbeat=now()))
    await store.upsert_node(make_node(last_heartbeat=now() - timedelta(minutes=10)))

    stats = StatsService(store.db, store, _no_depths, node_ttl_s=30)
    mine = await stats.overview(alice.default_org_id)
    by_name = {w.name: w for w in mine.windows}
    assert (by_name["1m"].completed, by_name["1m"].failed, by_name["1m"].cancelled) == (1, 1, 0)
    assert by_name["1m"].success_rate == 0.5
    assert (by_name["5m"].completed, by_name["5m"].failed) == (2, 1)
    assert by_name["1h"].finished == 5
    assert by_name["1h"].success_rate == 0.75
    assert by_name["1h"].per_second == 5 / 3600
    assert mine.run_times.samples == 4
    assert mine.run_times.p50_ms == 250.0
    assert mine.run_times.p95_ms == percentile([100, 200, 300, 400], 0.95) == 385.0
    assert mine.scope == "own"
    assert mine.depths["PENDING"] == 0, "an org's depths are its own, not the queue's"
    assert mine.org_id == alice.default_org_id and mine.orgs is None
    assert sorted(n.alive for n in mine.nodes) == [False, True]

    everyone = await stats.overview(None)
    assert {w.name: w.finished for w in everyone.windows} == {"1m": 3, "5m": 4, "1h": 6}
    assert everyone.run_times.samples == 5 and everyone.scope == "all"
    assert everyone.depths["PENDING"] == 7 and everyone.depths["FAILED"] == 0
    assert everyone.org_id is None

    empty = await stats.overview(str(uuid.uuid4()))
    assert all(w.finished == 0 and w.success_rate is None for w in empty.windows)
    assert empty.run_times.p50_ms is None and empty.run_times.samples == 0


async def test_stats_endpoint_scopes_by_role(
    make_stack, store: SqlStore, hasher: PasswordHasher
) -> None:
    stack: OpsStack = await make_stack()
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    created = await ensure_admin(store, hasher, admin_email, PASSWORD)
    assert created is not None
    response = await stack.client.post(
        "/api/v1/auth/login", json={"email": admin_email, "password": PASSWORD}
    )
    admin_token = (await response.json())["accessToken"]
    admin = created[0]
    user, user_token = await stack.sign_up(f"user-{uuid.uuid4().hex[:8]}@example.com")
    assert user.role is Role.USER

    done = [
        await stack.engine.tasks.create(admin, spec()),
        await stack.engine.tasks.create(admin, spec()),
        await stack.engine.tasks.create(user, spec()),
        await stack.engine.tasks.create(user, spec(handler="fail", payload={"message": "x"})),
    ]
    for task in done:
        await stack.engine.wait_until_final(task.id)

    response = await stack.client.get("/api/v1/stats")
    assert response.status == 401

    response = await stack.client.get(
        "/api/v1/stats", headers={"Authorization": f"Bearer {user_token}"}
    )
    assert response.status == 200, await response.text()
    own = await response.json()
    assert own["scope"] == "own"
    assert own["throughput"]["1h"]["finished"] == 2
    assert own["throughput"]["1h"]["successRate"] == 0.5
    assert own["runTime"]["samples"] == 2 and own["runTime"]["p50Ms"] is not None
    assert set(own["depths"]) == {s.value for s in ExecutionStatus}
    assert own["tables"] is None  # table sizes are the operator's business

    response = await stack.client.get(
        "/api/v1/stats", headers={"Authorization": f"Bearer {admin_token}"}
    )
    everything = await response.json()
    assert everything["scope"] == "all"
    assert everything["throughput"]["1m"]["completed"] == 3
    assert everything["throughput"]["1m"]["failed"] == 1
    assert everything["throughput"]["5m"]["successRate"] == 0.75
    tables = everything["tables"]
    assert set(tables) >= {"tasks", "job_executions", "retry_history", "dead_letter_jobs"}
    if store.db.dialect == "sqlite":  # exact; PostgreSQL's estimates lag until ANALYZE
        assert tables["tasks"] == 4 and tables["job_executions"] == 4
        assert tables["users"] == 2


async def test_ready_answers_200_with_each_check(make_stack) -> None:
    stack: OpsStack = await make_stack()
    response = await stack.client.get("/ready")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "queue"}
    assert all(check["ok"] and check["reason"] is None for check in body["checks"].values())


async def test_ops_routes_are_in_the_openapi_document(make_stack) -> None:
    stack: OpsStack = await make_stack()
    document = await (await stack.client.get("/api/openapi.json")).json()
    paths = document["paths"]
    assert paths["/metrics"]["get"]["security"] == []
    assert paths["/ready"]["get"]["security"] == []
    assert "429" not in paths["/ready"]["get"]["responses"]
    assert "429" not in paths["/metrics"]["get"]["responses"]
    assert paths["/api/v1/stats"]["get"]["security"] == [{"bearerAuth": []}]


async def _queued(store: SqlStore, owner: User, count: int, status: ExecutionStatus) -> None:
    task = make_task(owner.id, handler="echo", org_id=owner.default_org_id)
    await store.create_task(task)
    due = now() + timedelta(days=1)  # not run by a test's workers
    for _ in range(count):
        await insert_execution(store.db, make_execution(task, status=status, run_at=due))


async def test_a_site_admin_sees_every_org_and_an_org_only_itself(store: SqlStore) -> None:
    busy = await store.create_user(make_user())
    quiet = await store.create_user(make_user())
    await _queued(store, busy, 3, ExecutionStatus.PENDING)
    await _queued(store, busy, 1, ExecutionStatus.PROCESSING)
    await _queued(store, quiet, 1, ExecutionStatus.RETRYING)
    await _finished(store, quiet, ExecutionStatus.COMPLETED, timedelta(seconds=5), 10)
    await _finished(store, quiet, ExecutionStatus.FAILED, timedelta(seconds=5), 10)
    stats = StatsService(store.db, store, _no_depths, node_ttl_s=30)

    everyone = await stats.overview(None)
    assert everyone.orgs is not None
    by_org = {o.org_id: o for o in everyone.orgs}
    assert [o.org_id for o in everyone.orgs] == [busy.default_org_id, quiet.default_org_id], (
        "the busiest org first"
    )
    assert busy.default_org_id is not None and quiet.default_org_id is not None
    first, second = by_org[busy.default_org_id], by_org[quiet.default_org_id]
    assert first.depths == {"PENDING": 3, "RETRYING": 0, "PROCESSING": 1}
    assert first.last_hour.finished == 0 and first.slug
    assert second.depths == {"PENDING": 0, "RETRYING": 1, "PROCESSING": 0}
    assert (second.last_hour.completed, second.last_hour.failed) == (1, 1)

    own = await stats.overview(busy.default_org_id)
    assert (own.depths["PENDING"], own.depths["PROCESSING"], own.depths["RETRYING"]) == (3, 1, 0)
    assert own.orgs is None and own.tables is None


async def test_stats_endpoint_by_org(make_stack, store: SqlStore, hasher: PasswordHasher) -> None:
    stack: OpsStack = await make_stack()
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    created = await ensure_admin(store, hasher, admin_email, PASSWORD)
    assert created is not None
    response = await stack.client.post(
        "/api/v1/auth/login", json={"email": admin_email, "password": PASSWORD}
    )
    admin = {"Authorization": f"Bearer {(await response.json())['accessToken']}"}
    owner, owner_token = await stack.sign_up(f"owner-{uuid.uuid4().hex[:8]}@example.com")
    other, _ = await stack.sign_up(f"other-{uuid.uuid4().hex[:8]}@example.com")
    await _queued(store, owner, 2, ExecutionStatus.PENDING)
    task = await stack.engine.tasks.create(other, spec())
    await stack.engine.wait_until_final(task.id)
    org_id = owner.default_org_id
    assert org_id is not None

    response = await stack.client.get(
        "/api/v1/stats", headers={"Authorization": f"Bearer {owner_token}"}
    )
    own = await response.json()
    assert (own["scope"], own["orgId"], own["orgs"]) == ("own", org_id, None)
    assert own["depths"]["PENDING"] == 2
    assert own["throughput"]["1h"]["finished"] == 0, "another org's outcomes are not shown"

    everything = await (await stack.client.get("/api/v1/stats", headers=admin)).json()
    assert everything["scope"] == "all" and everything["orgId"] is None
    orgs = {o["orgId"]: o for o in everything["orgs"]}
    assert orgs[org_id]["depths"]["PENDING"] == 2
    assert orgs[other.default_org_id]["lastHour"]["completed"] == 1
    assert everything["depths"]["PENDING"] == 2

    in_org = await stack.client.get("/api/v1/stats", headers={**admin, "X-Taskflow-Org": org_id})
    scoped = await in_org.json()
    assert (scoped["scope"], scoped["orgId"], scoped["depths"]["PENDING"]) == ("own", org_id, 2)

    await stack.metrics.refresh()
    depth = stack.metrics.registry.get_sample_value(
        "taskflow_org_queue_depth", {"org": org_id, "state": "pending"}
    )
    assert depth == 2
    completed = stack.metrics.registry.get_sample_value(
        "taskflow_org_jobs_total", {"org": str(other.default_org_id), "outcome": "COMPLETED"}
    )
    assert completed == 1
