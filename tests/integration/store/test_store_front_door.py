"""Store contract for the front door: batches, runs with their own keys, API keys, and
records rendered as JSON by the database itself (on every SQL backend)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from taskflowd.api.schemas_tasks import DEAD_LETTER_SHAPE, EXECUTION_SHAPE, TASK_SHAPE
from taskflowd.api.shapes import as_dict
from taskflowd.domain.entities import ApiKey, Execution, utcnow
from taskflowd.domain.jobs import run_job_ids
from taskflowd.store import SqlStore
from taskflowd.store.base import (
    ExecutionFilter,
    IdempotencyClaim,
    Planner,
    Replay,
    RunPlan,
    TaskFilter,
)
from taskflowd.store.errors import DuplicateKey
from tests.integration.store.factories import (
    insert_dead_letter,
    make_dead_letter,
    make_execution,
    make_task,
    make_user,
)


def claim(key: str, render: Any) -> IdempotencyClaim:
    now = utcnow()
    return IdempotencyClaim("o", "u", key, "fp", now, now - timedelta(hours=24), render)


def planned(runs: list[Execution]) -> Planner:
    return lambda task: RunPlan(runs)


def run_of(execution: Execution, key: str | None = None) -> Execution:
    return dataclasses.replace(
        execution,
        id=str(uuid.uuid4()),
        job_id=run_job_ids(execution.task_id, 1)[0],
        idempotency_key=key,
    )


async def test_a_batch_of_tasks_is_written_whole_or_not_at_all(store: SqlStore) -> None:
    user = await store.create_user(make_user())
    tasks = [make_task(user.id, org_id=user.default_org_id) for _ in range(3)]
    entries = [(t, make_execution(t)) for t in tasks]
    created = await store.create_tasks(entries)
    assert created == tasks
    page = await store.list_executions(ExecutionFilter(org_id=user.default_org_id), 10)
    assert {e.task_id for e in page.items} == {t.id for t in tasks}
    clash = make_task(user.id)
    with pytest.raises(DuplicateKey):
        await store.create_tasks([(clash, None), (tasks[0], None)])
    assert await store.get_task(clash.id) is None, "a failed batch leaves nothing behind"


async def test_runs_with_used_keys_stand_for_their_first_execution(store: SqlStore) -> None:
    user = await store.create_user(make_user())
    task = make_task(user.id)
    await store.create_task(task)
    base = make_execution(task)
    runs = [run_of(base, "a"), run_of(base)]
    first, inserted = await store.add_runs(task.id, None, planned(runs))
    assert inserted == first
    again = [run_of(base, "a"), run_of(base, "b")]
    result, inserted = await store.add_runs(task.id, None, planned(again))
    assert result[0] == first[0], "the used key answers with the execution it created"
    assert result[1].id == again[1].id and inserted == [again[1]]
    stored = await store.list_executions(ExecutionFilter(task_id=task.id), 10)
    assert len(stored.items) == 3


async def test_runs_with_a_request_key_replay_as_a_whole(store: SqlStore) -> None:
    user = await store.create_user(make_user())
    task = make_task(user.id)
    await store.create_task(task)
    base = make_execution(task)

    def render(result: list[Execution]) -> tuple[int, str]:
        return 202, orjson.dumps([e.id for e in result]).decode()

    runs = [run_of(base, "x"), run_of(base)]
    result, _ = await store.add_runs(task.id, None, planned(runs), claim("req", render))
    with pytest.raises(Replay) as replayed:
        await store.add_runs(task.id, None, planned([run_of(base, "y")]), claim("req", render))
    assert orjson.loads(replayed.value.response.body) == [e.id for e in result]
    stored = await store.list_executions(ExecutionFilter(task_id=task.id), 10)
    assert len(stored.items) == 2, "the replayed request queued nothing"


async def test_json_rendered_by_the_database_equals_the_entity(store: SqlStore) -> None:
    user = await store.create_user(make_user())
    moment = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
    task = make_task(
        user.id,
        org_id=user.default_org_id,
        payload={"nested": {"list": [1, 2.5, 'x\u00e9"\\']}, "empty": {}},
        scheduled_at=moment,
        next_run_at=moment + timedelta(microseconds=7),
        description="line\nbreak and \t tab",
    )
    execution = make_execution(task)
    await store.create_task(task, execution)
    page = await store.list_tasks_json(TaskFilter(org_id=user.default_org_id), TASK_SHAPE, 10)
    assert [orjson.loads(item) for item in page.items] == [
        orjson.loads(orjson.dumps(as_dict(TASK_SHAPE, task)))
    ]
    one = await store.get_task_json(task.id, user.default_org_id, TASK_SHAPE)
    assert one is not None and orjson.loads(one) == orjson.loads(page.items[0])
    runs = await store.list_executions_json(ExecutionFilter(), EXECUTION_SHAPE, 10)
    assert [orjson.loads(r) for r in runs.items] == [
        orjson.loads(orjson.dumps(as_dict(EXECUTION_SHAPE, execution)))
    ]
    dead = make_dead_letter(execution)
    await insert_dead_letter(store.db, dead)
    letters = await store.list_dead_letter_json(None, DEAD_LETTER_SHAPE, 10)
    assert [orjson.loads(d) for d in letters.items] == [
        orjson.loads(orjson.dumps(as_dict(DEAD_LETTER_SHAPE, dead)))
    ]


async def test_rendered_pages_follow_the_same_cursor_as_entities(store: SqlStore) -> None:
    user = await store.create_user(make_user())
    for i in range(7):
        await store.create_task(make_task(user.id, created_at=utcnow() + timedelta(seconds=i)))
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_tasks_json(TaskFilter(), TASK_SHAPE.only(["id"]), 3, cursor)
        seen += [orjson.loads(item)["id"] for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    everything = await store.list_tasks(TaskFilter(), 100)
    assert seen == [t.id for t in everything.items]


async def test_api_keys_are_found_by_hash_listed_and_revoked(store: SqlStore) -> None:
    owner = await store.create_user(make_user())
    other = await store.create_user(make_user())
    moment = utcnow()
    keys = [
        ApiKey(str(uuid.uuid4()), owner.id, f"k{i}", "tfk_abcdefgh", f"hash-{i}", moment)
        for i in range(2)
    ]
    for key in keys:
        await store.create_api_key(key)
    assert await store.get_api_key_by_hash("hash-1") == keys[1]
    assert await store.get_api_key_by_hash("nope") is None
    listed = await store.list_api_keys(owner.id, None, 10)
    assert {k.id for k in listed.items} == {k.id for k in keys}
    assert (await store.list_api_keys(other.id, None, 10)).items == []
    assert (await store.list_api_keys(owner.id, "another-org", 10)).items == []
    assert await store.revoke_api_key(keys[0].id, other.id, None, moment) is None, "not theirs"
    assert await store.revoke_api_key(keys[0].id, None, "another-org", moment) is None
    revoked = await store.revoke_api_key(keys[0].id, owner.id, keys[0].org_id, moment)
    assert revoked is not None and revoked.revoked_at == moment
    assert await store.revoke_api_key(keys[0].id, None, None, moment) is None, "revoked once"
    assert [k.id for k in (await store.list_api_keys(owner.id, None, 10)).items] == [keys[1].id]
    later = moment + timedelta(minutes=5)
    await store.touch_api_key(keys[1].id, later)
    await store.touch_api_key(keys[1].id, moment)
    touched = await store.get_api_key_by_hash("hash-1")
    assert touched is not None and touched.last_used_at == later, "never moves back"
