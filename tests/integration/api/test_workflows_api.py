"""/api/v1/workflows and /api/v1/workflow-runs over the real API, a real engine and each
SQL backend: the §9 run shape, ownership (404 for another's), validation problems."""

from __future__ import annotations

from typing import Any

import pytest

from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService
from tests.integration.api.conftest import Client, MakeClient, Session, assert_problem, sign_up
from tests.integration.engine.conftest import make_engine
from tests.integration.engine.harness import EngineFactory
from tests.integration.queue.polling import eventually

__all__ = ["make_engine"]

WORKFLOWS = "/api/v1/workflows"
RUNS = "/api/v1/workflow-runs"


@pytest.fixture
async def client(make_client: MakeClient, make_engine: EngineFactory) -> Client:
    engine = await make_engine(start=False)
    service = WorkflowService(
        WorkflowRecords(engine.store.db), engine.queue, engine.handlers, engine.events
    )
    engine.queue.set_final_hook(service.on_final)
    await engine.start()
    return await make_client(tasks=engine.tasks, workflows=service)


async def call(
    client: Client, session: Session, method: str, path: str, body: Any = None, expect: int = 200
) -> Any:
    response = await client.request(method, path, json=body, headers=session.headers)
    assert response.status == expect, await response.text()
    return None if response.status == 204 else await response.json()


DIAMOND = [
    {"key": "a", "payload": {"size": 3}},
    {"key": "b", "dependsOn": ["a"]},
    {
        "key": "c",
        "dependsOn": ["a"],
        "when": {"step": "a", "path": "result.payload.size", "op": "gt", "value": 5},
    },
    {"key": "d", "dependsOn": ["b", "c"], "trigger": "NONE_FAILED"},
]


async def test_define_run_and_read_a_workflow(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    created = await call(
        client, alice, "POST", WORKFLOWS, {"name": "nightly", "steps": DIAMOND}, 201
    )
    assert created["status"] == "ACTIVE" and [s["key"] for s in created["steps"]] == list("abcd")
    assert created["steps"][3]["trigger"] == "NONE_FAILED"
    run = await call(client, alice, "POST", f"{WORKFLOWS}/{created['id']}/run", None, 202)
    assert run["status"] == "RUNNING" and run["workflowId"] == created["id"]

    async def done() -> Any:
        found = await call(client, alice, "GET", f"{RUNS}/{run['id']}")
        return found if found["status"] != "RUNNING" else None

    finished = await eventually(done, "the run to finish")
    assert finished["status"] == "SUCCEEDED"
    steps = {s["key"]: s for s in finished["steps"]}
    assert {k: s["status"] for k, s in steps.items()} == {
        "a": "COMPLETED",
        "b": "COMPLETED",
        "c": "SKIPPED",
        "d": "COMPLETED",
    }
    assert steps["c"]["skipCause"] == "CONDITION" and steps["c"]["executionId"] is None
    assert steps["d"]["result"]["upstream"]["c"] is None
    assert set(steps["a"]) == {
        "key", "status", "executionId", "attempts", "result", "error", "startedAt",
        "finishedAt", "skipCause",
    }  # fmt: skip
    listed = await call(client, alice, "GET", f"{RUNS}?workflowId={created['id']}")
    assert [r["id"] for r in listed["items"]] == [run["id"]]
    execution = await call(client, alice, "GET", f"/api/v1/executions/{steps['a']['executionId']}")
    assert execution["status"] == "COMPLETED"


async def test_another_users_workflow_is_not_found(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    mallory = await sign_up(client, "mallory@example.com")
    created = await call(client, alice, "POST", WORKFLOWS, {"name": "x", "steps": DIAMOND}, 201)
    run = await call(client, alice, "POST", f"{WORKFLOWS}/{created['id']}/run", None, 202)
    for method, path in [
        ("GET", f"{WORKFLOWS}/{created['id']}"),
        ("POST", f"{WORKFLOWS}/{created['id']}/run"),
        ("POST", f"{WORKFLOWS}/{created['id']}/pause"),
        ("DELETE", f"{WORKFLOWS}/{created['id']}"),
        ("GET", f"{RUNS}/{run['id']}"),
        ("POST", f"{RUNS}/{run['id']}/cancel"),
        ("POST", f"{RUNS}/{run['id']}/retry"),
    ]:
        assert_problem(await call(client, mallory, method, path, None, 404), 404, "not_found")
    assert (await call(client, mallory, "GET", WORKFLOWS))["items"] == []
    assert (await call(client, mallory, "GET", RUNS))["items"] == []


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        ([{"key": "a", "dependsOn": ["b"]}, {"key": "b", "dependsOn": ["a"]}], "steps", "→"),
        ([{"key": "a", "dependsOn": ["zz"]}], "steps[0].dependsOn[0]", "unknown step"),
        ([{"key": "a"}, {"key": "a"}], "steps[1].key", "duplicate"),
        ([{"key": "a", "handler": "nope"}], "steps[0].handler", "unknown handler"),
        ([{"key": "a", "trigger": "SOMETIMES"}], "steps.0.trigger", ""),
    ],
)
async def test_invalid_workflows_are_422_naming_the_field(
    client: Client, steps: list[dict[str, Any]], field: str, words: str
) -> None:
    alice = await sign_up(client, "alice@example.com")
    body = await call(client, alice, "POST", WORKFLOWS, {"name": "bad", "steps": steps}, 422)
    assert_problem(body, 422, "validation_failed")
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert any(f.replace("[", ".").replace("]", "") == field.replace("[", ".").replace("]", "")
               for f in messages), messages  # fmt: skip
    assert any(words in m for m in messages.values())


async def test_idempotency_key_on_create_and_run_and_a_schedule(client: Client) -> None:
    alice = await sign_up(client, "alice@example.com")
    body = {"name": "nightly", "steps": DIAMOND, "cronExpression": "0 3 * * *"}
    keyed = {**alice.headers, "Idempotency-Key": "create-1"}
    answers = []
    for _ in range(2):
        response = await client.post(WORKFLOWS, json=body, headers=keyed)
        assert response.status == 201, await response.text()
        answers.append(await response.json())
    assert answers[0] == answers[1]
    workflow = answers[0]
    assert workflow["cronExpression"] == "0 3 * * *" and workflow["timezone"] == "UTC"
    assert workflow["misfirePolicy"] == "RUN_ONCE" and workflow["nextRunAt"].startswith("20")
    listed = await call(client, alice, "GET", WORKFLOWS)
    assert [w["id"] for w in listed["items"]] == [workflow["id"]]
    reused = await client.post(WORKFLOWS, json={**body, "name": "other"}, headers=keyed)
    assert reused.status == 422
    assert_problem(await reused.json(), 422, "idempotency_key_reused")

    run_headers = {**alice.headers, "Idempotency-Key": "run-1"}
    first = await client.post(f"{WORKFLOWS}/{workflow['id']}/run", headers=run_headers)
    again = await client.post(f"{WORKFLOWS}/{workflow['id']}/run", headers=run_headers)
    assert first.status == again.status == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await first.json())["id"] == (await again.json())["id"]
    runs = await call(client, alice, "GET", f"{RUNS}?workflowId={workflow['id']}")
    assert len(runs["items"]) == 1

    changed = await call(
        client, alice, "PATCH", f"{WORKFLOWS}/{workflow['id']}", {"cronExpression": None}
    )
    assert changed["cronExpression"] is None and changed["nextRunAt"] is None
    bad = await client.patch(
        f"{WORKFLOWS}/{workflow['id']}",
        json={"cronExpression": "not cron", "timezone": "Nowhere/Else"},
        headers=alice.headers,
    )
    assert bad.status == 422
    problem = await bad.json()
    assert {e["field"] for e in problem["errors"]} == {"cronExpression", "timezone"}
