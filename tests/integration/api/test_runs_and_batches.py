"""Runs with their own payloads, batches of runs and of tasks, ON_DEMAND tasks: over the
real API, a real engine and each SQL backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from taskflowd.domain.entities import utcnow
from taskflowd.store import SqlStore
from tests.integration.api.conftest import Client, MakeClient, Session, assert_problem, sign_up
from tests.integration.engine.conftest import make_engine
from tests.integration.engine.harness import Engine, EngineFactory
from tests.integration.queue.polling import eventually

__all__ = ["make_engine"]

TASKS = "/api/v1/tasks"


@pytest.fixture
async def stack(make_client: MakeClient, make_engine: EngineFactory) -> tuple[Client, Engine]:
    engine = await make_engine()
    client = await make_client(tasks=engine.tasks, auth_job_limit_per_min=2000)
    return client, engine


@pytest.fixture
async def user(stack: tuple[Client, Engine]) -> Session:
    return await sign_up(stack[0], "runner@example.com")


@pytest.fixture
async def api(stack: tuple[Client, Engine], user: Session) -> AsyncIterator[Api]:
    yield Api(stack[0], user)


class Api:
    def __init__(self, client: Client, session: Session) -> None:
        self.client = client
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, expect: int = 200, **headers: str
    ) -> Any:
        response = await self.client.request(
            method,
            path,
            json=body,
            headers={**self.session.headers, **headers},
        )
        payload = await response.json() if response.status != 204 else None
        assert response.status == expect, payload
        return payload

    async def task(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "job type", "type": "ON_DEMAND", "maxRetries": 0, **fields}
        created: dict[str, Any] = await self.call("POST", TASKS, body, 201)
        return created

    async def final(self, execution_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            found = await self.call("GET", f"/api/v1/executions/{execution_id}")
            final = found["status"] in ("COMPLETED", "FAILED", "CANCELLED")
            return found if final else None

        result: dict[str, Any] = await eventually(done, f"execution {execution_id} to end")
        return result


def fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem["errors"]}


async def test_an_on_demand_task_runs_only_when_asked(api: Api, store: SqlStore) -> None:
    task = await api.task(payload={"default": True})
    assert (task["type"], task["status"], task["nextRunAt"]) == ("ON_DEMAND", "ACTIVE", None)
    listed = await api.call("GET", f"{TASKS}/{task['id']}/executions")
    assert listed["items"] == []
    response = await api.client.post(f"{TASKS}/{task['id']}/run", headers=api.session.headers)
    assert response.status == 202
    run = await response.json()
    assert response.headers["Location"] == f"/api/v1/executions/{run['id']}"
    assert run["payload"] == {"default": True}, "without a body the run takes the task's payload"
    ended = await api.final(run["id"])
    assert (ended["status"], ended["result"]) == ("COMPLETED", {"default": True})
    again = await api.call("GET", f"{TASKS}/{task['id']}")
    assert again["status"] == "ACTIVE", "an on-demand task stays active after its runs"


async def test_a_run_carries_its_own_payload_and_priority(api: Api) -> None:
    task = await api.task(payload={"default": True}, priority=1)
    run = await api.call(
        "POST", f"{TASKS}/{task['id']}/run", {"payload": {"n": 7}, "priority": 9}, 202
    )
    assert run["payload"] == {"n": 7}
    ended = await api.final(run["id"])
    assert ended["result"] == {"n": 7} and ended["payload"] == {"n": 7}
    explicit_null = await api.call("POST", f"{TASKS}/{task['id']}/run", {"payload": None}, 202)
    assert explicit_null["payload"] is None, "an explicit null payload is the run's own"


async def test_a_run_can_be_due_later(api: Api) -> None:
    task = await api.task()
    at = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    later = await api.call("POST", f"{TASKS}/{task['id']}/run", {"runAt": at.isoformat()}, 202)
    assert (later["status"], later["scheduledFor"]) == ("PENDING", at.isoformat())
    delayed = await api.call("POST", f"{TASKS}/{task['id']}/run", {"delayMs": 3_600_000}, 202)
    assert delayed["status"] == "PENDING"
    both = await api.call(
        "POST",
        f"{TASKS}/{task['id']}/run",
        {"runAt": at.isoformat(), "delayMs": 5},
        422,
    )
    assert "delayMs" in fields(both)


async def test_extra_runs_do_not_end_a_one_time_task(api: Api) -> None:
    at = (utcnow() + timedelta(hours=1)).isoformat()
    task = await api.call("POST", TASKS, {"name": "once", "scheduledAt": at}, 201)
    run = await api.call("POST", f"{TASKS}/{task['id']}/run", {"payload": 1}, 202)
    assert (await api.final(run["id"]))["status"] == "COMPLETED"
    again = await api.call("GET", f"{TASKS}/{task['id']}")
    assert again["status"] == "ACTIVE", "its own job is still to come"


async def test_many_runs_in_one_request(api: Api, stack: tuple[Client, Engine]) -> None:
    task = await api.task()
    items = [{"payload": {"i": i}} for i in range(300)]
    response = await api.call("POST", f"{TASKS}/{task['id']}/runs", {"items": items}, 202)
    assert [r["payload"] for r in response["items"]] == [{"i": i} for i in range(300)]
    engine = stack[1]
    done = await engine.wait_until_final(task["id"], 300)
    assert sorted(e.result["i"] for e in done) == list(range(300))


async def test_runs_are_all_or_nothing(api: Api) -> None:
    task = await api.task(handler="http")
    good = {"payload": {"url": "https://example.com/hook"}}
    items = [good, good, good, {"payload": {"url": 5}}, good]
    problem = await api.call("POST", f"{TASKS}/{task['id']}/runs", {"items": items}, 422)
    assert_problem(problem, 422, "validation_failed")
    assert fields(problem) == {"items[3].payload.url"}, problem
    items[4] = {**good, "priority": 11}
    problem = await api.call("POST", f"{TASKS}/{task['id']}/runs", {"items": items}, 422)
    assert "items[4].priority" in fields(problem), problem
    listed = await api.call("GET", f"{TASKS}/{task['id']}/executions")
    assert listed["items"] == [], "one bad run, nothing queued"
    too_many = await api.call("POST", f"{TASKS}/{task['id']}/runs", {"items": [{}] * 1001}, 422)
    assert "items" in fields(too_many)


async def test_a_run_key_queues_its_run_once(api: Api) -> None:
    task = await api.task()
    path = f"{TASKS}/{task['id']}/runs"
    first = await api.call("POST", path, {"items": [{"idempotencyKey": "a", "payload": 1}]}, 202)
    second = await api.call(
        "POST",
        path,
        {"items": [{"idempotencyKey": "a", "payload": 2}, {"idempotencyKey": "b"}]},
        202,
    )
    assert second["items"][0]["id"] == first["items"][0]["id"]
    assert second["items"][0]["payload"] == 1, "the run that used the key first stands"
    listed = await api.call("GET", f"{TASKS}/{task['id']}/executions")
    assert len(listed["items"]) == 2
    twice = await api.call(
        "POST", path, {"items": [{"idempotencyKey": "c"}, {"idempotencyKey": "c"}]}, 422
    )
    assert "items[1].idempotencyKey" in fields(twice)


async def test_a_request_key_replays_runs_and_batches(api: Api) -> None:
    task = await api.task()
    path = f"{TASKS}/{task['id']}/runs"
    body = {"items": [{"payload": "x"}, {"payload": "y"}]}
    first = await api.client.post(
        path, json=body, headers={**api.session.headers, "Idempotency-Key": "runs-1"}
    )
    replay = await api.client.post(
        path, json=body, headers={**api.session.headers, "Idempotency-Key": "runs-1"}
    )
    assert (first.status, replay.status) == (202, 202)
    assert await replay.json() == await first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = await api.client.post(
        path, json={"items": [{}]}, headers={**api.session.headers, "Idempotency-Key": "runs-1"}
    )
    assert other.status == 422
    assert_problem(await other.json(), 422, "idempotency_key_reused")
    listed = await api.call("GET", f"{TASKS}/{task['id']}/executions")
    assert len(listed["items"]) == 2
    batch = {"items": [{"name": "a", "type": "ON_DEMAND"}, {"name": "b", "type": "ON_DEMAND"}]}
    made = await api.call("POST", f"{TASKS}/batch", batch, 201, **{"Idempotency-Key": "b-1"})
    again = await api.call("POST", f"{TASKS}/batch", batch, 201, **{"Idempotency-Key": "b-1"})
    assert again == made
    mine = await api.call("GET", f"{TASKS}?type=ON_DEMAND&limit=500")
    assert len(mine["items"]) == 3


async def test_a_batch_of_tasks_is_all_or_nothing(api: Api) -> None:
    items = [
        {"name": "every minute", "cronExpression": "* * * * *"},
        {"name": "broken", "cronExpression": "not cron"},
        {"name": "once", "payload": {"x": 1}},
    ]
    problem = await api.call("POST", f"{TASKS}/batch", {"items": items}, 422)
    assert fields(problem) == {"items[1].cronExpression"}
    assert (await api.call("GET", TASKS))["items"] == []
    items[1]["cronExpression"] = "*/5 * * * *"
    made = await api.call("POST", f"{TASKS}/batch", {"items": items}, 201)
    assert [t["name"] for t in made["items"]] == ["every minute", "broken", "once"]
    assert [t["type"] for t in made["items"]] == ["RECURRING", "RECURRING", "ONE_TIME"]
    listed = await api.call("GET", f"{TASKS}?limit=10")
    assert {t["id"] for t in listed["items"]} == {t["id"] for t in made["items"]}


async def test_a_repeated_run_key_replays_before_the_task_is_checked_again(api: Api) -> None:
    """The key is looked up first in the run's transaction: a retry after the task was
    paused still gets the first answer, not a 409."""
    task = await api.task()
    path = f"{TASKS}/{task['id']}/run"
    key = {"Idempotency-Key": "run-then-pause"}
    first = await api.call("POST", path, {"payload": 1}, 202, **key)
    await api.call("POST", f"{TASKS}/{task['id']}/pause", None, 200)
    again = await api.client.post(path, json={"payload": 1}, headers={**api.session.headers, **key})
    assert again.status == 202
    assert await again.json() == first
    assert again.headers["Idempotent-Replayed"] == "true"
    await api.call("POST", path, {"payload": 1}, 409)


async def test_runs_respect_ownership_pause_and_handler_roles(
    api: Api, stack: tuple[Client, Engine]
) -> None:
    task = await api.task()
    stranger = await sign_up(stack[0], "stranger@example.com")
    response = await stack[0].post(f"{TASKS}/{task['id']}/run", headers=stranger.headers)
    assert response.status == 404
    await api.call("POST", f"{TASKS}/{task['id']}/pause", None, 200)
    paused = await api.call("POST", f"{TASKS}/{task['id']}/runs", {"items": [{}]}, 409)
    assert_problem(paused, 409, "conflict")


async def test_job_creation_has_its_own_limit(make_client: MakeClient, make_engine: Any) -> None:
    engine = await make_engine()
    client = await make_client(tasks=engine.tasks, auth_job_limit_per_min=5)
    api = Api(client, await sign_up(client, "limited@example.com"))
    task = await api.task()
    path = f"{TASKS}/{task['id']}/runs"
    assert_problem(
        await api.call("POST", path, {"items": [{}] * 6}, 429), 429, "job_limit_exceeded"
    )
    await api.call("POST", path, {"items": [{}] * 3}, 202)
    refused = await client.post(path, json={"items": [{}] * 3}, headers=api.session.headers)
    assert refused.status == 429
    assert_problem(await refused.json(), 429, "job_rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    me = await client.get("/api/v1/auth/me", headers=api.session.headers)
    assert me.status == 200, "other requests are not held back by the job limit"
