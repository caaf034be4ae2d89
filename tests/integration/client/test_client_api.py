"""Every method of `AsyncClient` against a real node, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest

from taskflowd.client import (
    ApiError,
    AsyncClient,
    ExecutionStatus,
    NewRun,
    NewTask,
    Role,
    TaskChanges,
    TaskStatus,
    TaskType,
    WaitTimeout,
    models,
    webhooks,
)
from taskflowd.client.codec import json_name
from taskflowd.domain.entities import utcnow
from tests.integration.client.conftest import ADMIN_EMAIL, QUICK_RETRIES, Node
from tests.integration.client.operations import (
    CLIENT_METHODS,
    method_of,
    openapi_schemas,
    operation_ids,
)

PASSWORD = "a user password that is long"
WAIT_S = 30.0


def on_demand(name: str = "", **fields: Any) -> NewTask:
    return NewTask(name or f"client-{uuid.uuid4().hex[:8]}", type=TaskType.ON_DEMAND, **fields)


def new_email(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:8]}@example.com"


async def test_tasks_from_create_to_delete(admin: AsyncClient) -> None:
    created = await admin.tasks.create(
        on_demand("resize", payload={"size": 1}, priority=3, max_retries=0, timeout_ms=5000)
    )
    assert (created.name, created.type, created.status) == (
        "resize",
        TaskType.ON_DEMAND,
        TaskStatus.ACTIVE,
    )
    assert (created.payload, created.priority, created.timeout_ms) == ({"size": 1}, 3, 5000)
    assert await admin.tasks.get(created.id) == created

    changed = await admin.tasks.update(
        created.id, TaskChanges(priority=7, timeout_ms=None, description="bigger")
    )
    assert (changed.priority, changed.timeout_ms, changed.description) == (7, None, "bigger")
    assert changed.payload == {"size": 1}, "a field left UNSET stays as it is"

    paused = await admin.tasks.pause(created.id)
    assert paused.status is TaskStatus.PAUSED
    with pytest.raises(ApiError) as refused:
        await admin.tasks.run(created.id)
    assert (refused.value.status, refused.value.code) == (409, "conflict")
    assert (await admin.tasks.resume(created.id)).status is TaskStatus.ACTIVE

    await admin.tasks.delete(created.id)
    with pytest.raises(ApiError) as gone:
        await admin.tasks.get(created.id)
    assert (gone.value.status, gone.value.code) == (404, "not_found")


async def test_batches_lists_and_pages(admin: AsyncClient) -> None:
    marker = uuid.uuid4().hex[:8]
    batch = await admin.tasks.create_batch(
        [on_demand(f"{marker}-{i}") for i in range(5)]
        + [NewTask(f"{marker}-cron", cron_expression="0 3 * * *")]
    )
    assert [t.name for t in batch] == [f"{marker}-{i}" for i in range(5)] + [f"{marker}-cron"]
    assert batch[-1].type is TaskType.RECURRING and batch[-1].next_run_at is not None

    first = await admin.tasks.list(search=marker, limit=4)
    assert len(first.items) == 4 and first.next_cursor is not None
    rest = await admin.tasks.list(search=marker, limit=4, cursor=first.next_cursor)
    assert rest.next_cursor is None
    paged = [t.id for t in first.items + rest.items]
    walked = [t.id async for t in admin.tasks.iter(search=marker, page_size=2)]
    assert walked == paged
    assert sorted(walked) == sorted(t.id for t in batch)

    recurring = [t.id async for t in admin.tasks.iter(search=marker, type=TaskType.RECURRING)]
    assert recurring == [batch[-1].id]


async def test_a_bad_batch_item_is_named_and_nothing_is_stored(admin: AsyncClient) -> None:
    marker = uuid.uuid4().hex[:8]
    with pytest.raises(ApiError) as bad:
        await admin.tasks.create_batch(
            [on_demand(f"{marker}-ok"), NewTask(f"{marker}-bad", cron_expression="not cron")]
        )
    assert (bad.value.status, bad.value.code) == (422, "validation_failed")
    assert [e.field for e in bad.value.errors] == ["items[1].cronExpression"]
    assert bad.value.request_id
    assert "items[1].cronExpression" in str(bad.value)
    assert (await admin.tasks.list(search=marker)).items == ()


async def test_runs_with_their_own_payloads_and_wait(admin: AsyncClient) -> None:
    task = await admin.tasks.create(on_demand(payload={"from": "task"}, max_retries=0))

    own = await admin.tasks.run(task.id, {"from": "run"}, priority=9)
    assert own.status is ExecutionStatus.PENDING and own.payload == {"from": "run"}
    done = await admin.executions.wait(own.id, timeout_s=WAIT_S)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == {"from": "run"} and done.retry_history == ()
    assert done.started_at is not None and done.attempts == 1

    default = await admin.executions.wait((await admin.tasks.run(task.id)).id, timeout_s=WAIT_S)
    assert default.result == {"from": "task"}, "a run without a payload takes the task's"

    many = await admin.tasks.runs(
        task.id, [NewRun([i]) for i in range(3)] + [NewRun(None, idempotency_key="once")]
    )
    assert [e.payload for e in many] == [[0], [1], [2], None]
    again = await admin.tasks.runs(task.id, [NewRun("other", idempotency_key="once")])
    assert [e.id for e in again] == [many[3].id], "a used run key does not queue again"
    for execution in many:
        assert (await admin.executions.wait(execution.id, timeout_s=WAIT_S)).is_final

    page = await admin.tasks.executions(task.id, status=ExecutionStatus.COMPLETED, limit=500)
    assert {e.id for e in page.items} == {own.id, default.id, *(e.id for e in many)}
    listed = [e.id async for e in admin.executions.iter(task_id=task.id, page_size=2)]
    assert sorted(listed) == sorted(e.id for e in page.items)
    only_own = await admin.executions.list(task_id=task.id, limit=1)
    assert len(only_own.items) == 1 and only_own.next_cursor is not None


async def test_wait_returns_failures_and_cancellations_and_times_out(admin: AsyncClient) -> None:
    failing = await admin.tasks.create(
        on_demand(handler="fail", payload={"message": "boom"}, max_retries=0)
    )
    failed = await admin.executions.wait((await admin.tasks.run(failing.id)).id, timeout_s=WAIT_S)
    assert failed.status is ExecutionStatus.FAILED
    assert "boom" in str(failed.error)

    later = await admin.tasks.create(on_demand())
    queued = await admin.tasks.run(later.id, run_at=utcnow() + timedelta(hours=1))
    with pytest.raises(WaitTimeout) as timed_out:
        await admin.executions.wait(queued.id, timeout_s=0.2)
    assert timed_out.value.execution.id == queued.id
    assert timed_out.value.execution.status is ExecutionStatus.PENDING
    assert isinstance(timed_out.value, TimeoutError)

    cancelled = await admin.executions.cancel(queued.id)
    assert cancelled.status is ExecutionStatus.CANCELLED
    assert (await admin.executions.wait(queued.id)).status is ExecutionStatus.CANCELLED


async def test_dead_letters_retry_and_delete(admin: AsyncClient) -> None:
    task = await admin.tasks.create(
        on_demand(handler="fail", payload={"message": "dead"}, max_retries=0)
    )
    execution = await admin.tasks.run(task.id)
    await admin.executions.wait(execution.id, timeout_s=WAIT_S)
    letters = [d async for d in admin.dead_letters.iter() if d.execution_id == execution.id]
    assert len(letters) == 1 and letters[0].task_id == task.id and letters[0].attempts == 1

    retried = await admin.dead_letters.retry(letters[0].id)
    assert retried.id == execution.id
    final = await admin.executions.wait(execution.id, timeout_s=WAIT_S)
    assert final.status is ExecutionStatus.FAILED and final.attempts == 2
    assert [r.attempt for r in final.retry_history] == [1, 2]

    again = [
        d
        for d in (await admin.dead_letters.list(limit=500)).items
        if d.execution_id == execution.id
    ]
    assert len(again) == 1
    await admin.dead_letters.delete(again[0].id)
    remaining = (await admin.dead_letters.list(limit=500)).items
    assert execution.id not in {d.execution_id for d in remaining}


async def test_one_idempotency_key_does_a_thing_once(admin: AsyncClient) -> None:
    key = f"create-{uuid.uuid4().hex}"
    spec = on_demand("once")
    first = await admin.tasks.create(spec, idempotency_key=key)
    assert await admin.tasks.create(spec, idempotency_key=key) == first
    with pytest.raises(ApiError) as reused:
        await admin.tasks.create(on_demand("other"), idempotency_key=key)
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")

    run = await admin.tasks.run(first.id, 1, idempotency_key=f"run-{key}")
    assert (await admin.tasks.run(first.id, 1, idempotency_key=f"run-{key}")).id == run.id
    runs = await admin.tasks.runs(first.id, [NewRun(2), NewRun(3)], idempotency_key=f"runs-{key}")
    again = await admin.tasks.runs(first.id, [NewRun(2), NewRun(3)], idempotency_key=f"runs-{key}")
    assert [e.id for e in again] == [e.id for e in runs]
    batch = [on_demand("b1"), on_demand("b2")]
    made = await admin.tasks.create_batch(batch, idempotency_key=f"batch-{key}")
    assert await admin.tasks.create_batch(batch, idempotency_key=f"batch-{key}") == made


async def test_api_keys_act_as_their_user_until_revoked(node: Node) -> None:
    email = new_email("keys")
    async with AsyncClient(node.url, retry=QUICK_RETRIES) as person:
        user = await person.auth.register(email, PASSWORD, first_name="Ada", last_name="L")
        await person.auth.login(email, PASSWORD)
        created = await person.api_keys.create("ci", expires_at=utcnow() + timedelta(days=1))
        assert created.key.startswith("tfk_") and created.key.startswith(created.prefix)
        listed = (await person.api_keys.list()).items
        assert [(k.id, k.name, k.prefix) for k in listed] == [(created.id, "ci", created.prefix)]
        assert not hasattr(listed[0], "key"), "a listed key never shows its secret"

        async with AsyncClient(node.url, api_key=created.key, retry=QUICK_RETRIES) as program:
            assert (await program.auth.me()).id == user.id
            task = await program.tasks.create(on_demand())
            assert task.created_by == user.id
            with pytest.raises(ApiError) as nested:
                await program.api_keys.create("from a key")
            assert (nested.value.status, nested.value.code) == (403, "forbidden")

            await person.api_keys.revoke(created.id)
            with pytest.raises(ApiError) as revoked:
                await program.tasks.get(task.id)
            assert (revoked.value.status, revoked.value.code) == (401, "invalid_token")
        assert [k async for k in person.api_keys.iter()] == []


async def test_sign_in_refresh_password_and_logout(node: Node) -> None:
    email = new_email("person")
    async with AsyncClient(node.url, retry=QUICK_RETRIES) as client:
        user = await client.auth.register(email, PASSWORD, first_name="Grace", last_name="H")
        assert (user.email, user.role, user.is_active) == (email, Role.USER, True)
        with pytest.raises(ApiError) as anonymous:
            await client.auth.me()
        assert (anonymous.value.status, anonymous.value.code) == (401, "unauthorized")

        pair = await client.auth.login(email, PASSWORD)
        assert pair.token_type == "Bearer" and pair.expires_in_s > 0
        assert await client.auth.me() == user
        renewed = await client.auth.refresh(pair.refresh_token)
        assert renewed.access_token != pair.access_token
        assert (await client.auth.me()).id == user.id
        with pytest.raises(ApiError) as spent:
            await client.auth.refresh(pair.refresh_token)
        assert spent.value.status == 401

        await client.auth.login(email, PASSWORD)
        await client.auth.change_password(PASSWORD, "another password, long too")
        with pytest.raises(ApiError) as old:
            await client.auth.login(email, PASSWORD)
        assert old.value.status == 401
        latest = await client.auth.login(email, "another password, long too")
        await client.auth.logout(latest.refresh_token)
        with pytest.raises(ApiError) as ended:
            await client.auth.refresh(latest.refresh_token)
        assert ended.value.status == 401


async def test_admins_manage_users_and_users_may_not(node: Node, admin: AsyncClient) -> None:
    email = new_email("managed")
    created = await admin.users.create(email, PASSWORD, first_name="Alan", last_name="Turing")
    assert (created.role, created.is_active) == (Role.USER, True)
    assert await admin.users.get(created.id) == created
    first = await admin.users.list(limit=1)
    assert len(first.items) == 1 and first.next_cursor is not None
    everyone = {u.email async for u in admin.users.iter(page_size=1)}
    assert {email, ADMIN_EMAIL} <= everyone

    async with AsyncClient(node.url, retry=QUICK_RETRIES) as plain:
        await plain.auth.login(email, PASSWORD)
        with pytest.raises(ApiError) as forbidden:
            await plain.users.list()
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
        own = await plain.stats()
        assert own.scope == "own"

    changed = await admin.users.update(
        created.id, role=Role.ADMIN, is_active=False, first_name="A."
    )
    assert (changed.role, changed.is_active, changed.first_name, changed.last_name) == (
        Role.ADMIN,
        False,
        "A.",
        "Turing",
    )
    await admin.users.delete(created.id)
    with pytest.raises(ApiError) as deleted:
        await admin.users.get(created.id)
    assert deleted.value.status == 404


async def test_health_readiness_stats_metrics_and_document(admin: AsyncClient) -> None:
    assert (await admin.health()).status == "ok"
    ready = await admin.ready()
    assert ready.ready and ready.status == "ready"
    assert ready.checks["database"].ok and ready.checks["database"].reason is None
    task = await admin.tasks.create(on_demand())
    await admin.executions.wait((await admin.tasks.run(task.id)).id, timeout_s=WAIT_S)
    stats = await admin.stats()
    assert stats.scope == "all"
    assert stats.throughput["1m"].completed >= 1
    assert [n.alive for n in stats.nodes] == [True]
    assert "taskflow_jobs_total" in await admin.metrics()
    document = await admin.openapi()
    assert document["openapi"] == "3.1.0"


async def test_every_operation_of_the_document_has_a_method(sqlite_node: Node) -> None:
    assert await operation_ids(sqlite_node.url) == set(CLIENT_METHODS)
    async with AsyncClient(sqlite_node.url) as client:
        for dotted in CLIENT_METHODS.values():
            assert callable(method_of(client, dotted)), dotted


RESPONSE_MODELS: dict[type, str] = {
    models.Task: "TaskOut",
    models.Execution: "ExecutionOut",
    models.ExecutionDetail: "ExecutionDetailOut",
    models.RetryRecord: "RetryOut",
    models.DeadLetter: "DeadLetterOut",
    models.ApiKey: "ApiKeyOut",
    models.NewApiKey: "NewApiKeyOut",
    models.User: "UserOut",
    models.TokenPair: "TokenPairOut",
    models.Health: "HealthOut",
    models.Readiness: "ReadyOut",
    models.Check: "CheckOut",
    models.Stats: "StatsOut",
    models.Throughput: "WindowOut",
    models.RunTimes: "RunTimesOut",
    models.Node: "NodeOut",
    models.Org: "OrgOut",
    models.OrgQuotas: "QuotasOut",
    models.Member: "MemberOut",
    webhooks.Webhook: "WebhookOut",
    webhooks.NewWebhook: "WebhookWithSecret",
    webhooks.Delivery: "DeliveryOut",
}


async def test_models_mirror_the_document(sqlite_node: Node) -> None:
    schemas = await openapi_schemas(sqlite_node.url)
    for model, schema in RESPONSE_MODELS.items():
        fields = {json_name(f) for f in dataclasses.fields(model)}
        assert fields == set(schemas[schema]["properties"]), schema

    every = {f.name: 1 for f in dataclasses.fields(models.NewTask)}
    assert set(models.NewTask(**every).to_json()) == set(schemas["TaskCreate"]["properties"])
    changes = models.TaskChanges(**{f.name: 1 for f in dataclasses.fields(models.TaskChanges)})
    assert set(changes.to_json()) == set(schemas["TaskPatch"]["properties"])
    run = models.NewRun(**{f.name: 1 for f in dataclasses.fields(models.NewRun)})
    assert set(run.to_json()) == set(schemas["RunItem"]["properties"])
