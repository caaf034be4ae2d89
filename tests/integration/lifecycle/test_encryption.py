"""Encryption at rest on every SQL backend: values round-trip through every read path,
the SQLite file holds no plaintext, a wrong key is refused, and keys rotate while jobs
run."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from taskflowd.config import WebhookSettings
from taskflowd.domain.entities import Execution, utcnow
from taskflowd.lifecycle.keys import SEALED_COLUMNS, KeysMissing, check_keys, rotate
from taskflowd.queue.base import Outcome, OutcomeKind
from taskflowd.queue.sql import SqlQueue
from taskflowd.store import SqlStore, open_store
from taskflowd.store.base import ExecutionFilter, IdempotencyClaim
from taskflowd.store.codec import Keyring, SealedValueError, key_id, sealed_key_id
from taskflowd.store.render import Field, Kind, Shape
from taskflowd.webhooks.outbox import WebhookOutbox
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.service import WebhookService
from tests.integration.queue.factories import due_job
from tests.integration.store.factories import make_task, make_user

SECRET = "s3cr3t-p4yl04d-marker"
PAYLOAD = {"token": SECRET, "n": 7}
PAYLOAD_SHAPE = Shape((Field("id", "id", Kind.TEXT), Field("payload", "payload", Kind.JSON)))
RESULT_SHAPE = Shape((Field("id", "id", Kind.TEXT), Field("result", "result", Kind.JSON)))


@pytest.fixture
async def opened() -> AsyncIterator[list[SqlStore]]:
    """Stores opened by a test (with the keys it chooses), stopped afterwards."""
    stores: list[SqlStore] = []
    yield stores
    for store in stores:
        await store.stop()


async def _open(url: str, stores: list[SqlStore], *keys: bytes) -> SqlStore:
    store = open_store(url, Keyring(keys) if keys else None)
    await store.start()
    stores.append(store)
    return store


async def _close(store: SqlStore, stores: list[SqlStore]) -> None:
    stores.remove(store)
    await store.stop()


async def _run(queue: SqlQueue, limit: int, result: object) -> list[Execution]:
    claimed = await queue.acquire("worker-1", limit, 30)
    now = utcnow()
    await queue.settle(
        [
            Outcome(e.id, e.task_id, e.fence, OutcomeKind.COMPLETED, 1, now, now, 1, result)
            for e in claimed
        ]
    )
    return claimed


async def _sealed_values(store: SqlStore) -> list[str | None]:
    values: list[str | None] = []
    for table, _, columns in SEALED_COLUMNS:
        for column in columns:
            found = await store.db.fetch(f"SELECT {column} AS v FROM {table}")
            values += [r["v"] for r in found if r["v"] is not None]
    return values


async def test_values_round_trip_through_every_read_path(
    db_url: str, opened: list[SqlStore]
) -> None:
    key = os.urandom(32)
    store = await _open(db_url, opened, key)
    await check_keys(store.db)
    owner = await store.create_user(make_user())
    task = make_task(owner.id, payload=PAYLOAD, handler="echo")
    claim = IdempotencyClaim(
        task.org_id, owner.id, "k-1", "fp", utcnow(), utcnow() - timedelta(days=1),
        lambda created: (201, orjson.dumps({"payload": PAYLOAD}).decode()),
    )  # fmt: skip
    await store.create_task(task, due_job(task), claim)
    queue = SqlQueue(store.db)
    await queue.start()
    try:
        [run] = await _run(queue, 10, {"echo": SECRET})
    finally:
        await queue.stop()

    stored = await store.get_task(task.id)
    assert stored is not None and stored.payload == PAYLOAD
    assert orjson.loads(await store.get_task_json(task.id, None, PAYLOAD_SHAPE) or "") == {
        "id": task.id,
        "payload": PAYLOAD,
    }
    execution = await store.get_execution(run.id)
    assert execution is not None and execution.result == {"echo": SECRET}
    assert execution.payload == PAYLOAD
    page = await store.list_executions_json(ExecutionFilter(), RESULT_SHAPE, 10)
    assert [orjson.loads(i)["result"] for i in page.items] == [{"echo": SECRET}]
    replayed = await store.get_idempotent(task.org_id, owner.id, "k-1")
    assert replayed is not None and SECRET in replayed.body

    for value in await _sealed_values(store):
        assert sealed_key_id(value) == key_id(key)
        assert SECRET not in value
    row = await store.db.fetchrow("SELECT body FROM idempotency_keys")
    assert row is not None and SECRET not in row["body"]


async def test_the_sqlite_file_holds_no_plaintext(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sealed.db'}"
    store = open_store(url, Keyring([os.urandom(32)]))
    await store.start()
    try:
        owner = await store.create_user(make_user())
        queue = SqlQueue(store.db)
        await queue.start()
        for _ in range(20):
            task = make_task(owner.id, payload=PAYLOAD, handler="echo")
            await store.create_task(task, due_job(task))
        while await _run(queue, 5, {"echo": SECRET}):
            pass
        await queue.stop()
    finally:
        await store.stop()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("sealed.db")]
    assert files
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path.name
    assert b"s3cr3t" not in (tmp_path / "sealed.db").read_bytes()


async def test_a_missing_or_wrong_key_is_refused(db_url: str, opened: list[SqlStore]) -> None:
    right, wrong = os.urandom(32), os.urandom(32)
    store = await _open(db_url, opened, right)
    await check_keys(store.db)
    owner = await store.create_user(make_user())
    task = await store.create_task(make_task(owner.id, payload=PAYLOAD))
    await _close(store, opened)

    for keys in ((wrong,), ()):
        other = await _open(db_url, opened, *keys)
        with pytest.raises(KeysMissing, match=key_id(right)):
            await check_keys(other.db)
        with pytest.raises(SealedValueError):
            await other.get_task(task.id)
        await _close(other, opened)


async def test_keys_rotate_while_jobs_run(db_url: str, opened: list[SqlStore]) -> None:
    old, new = os.urandom(32), os.urandom(32)
    store = await _open(db_url, opened, old)
    await check_keys(store.db)
    owner = await store.create_user(make_user())
    tasks = [make_task(owner.id, payload=PAYLOAD, handler="echo") for _ in range(60)]
    await store.create_tasks([(t, due_job(t)) for t in tasks])
    queue = SqlQueue(store.db)
    await queue.start()
    await _run(queue, 20, {"before": SECRET})  # results sealed under the old key
    await queue.stop()
    await _close(store, opened)

    store = await _open(db_url, opened, new, old)
    await check_keys(store.db)
    queue = SqlQueue(store.db)
    await queue.start()
    done: list[Execution] = []

    async def drain() -> None:
        # A claim skips the rows rotation holds locked, so an empty claim is no end.
        deadline = time.monotonic() + 30
        while len(done) < 40 and time.monotonic() < deadline:
            batch = await _run(queue, 3, {"after": SECRET})
            done.extend(batch)
            await asyncio.sleep(0 if batch else 0.01)

    try:
        draining = asyncio.create_task(drain())
        report = await rotate(store.db, batch_size=7, pause_s=0)
        await draining
    finally:
        await queue.stop()
    assert len(done) == 40
    assert report.resealed > 0
    values = await _sealed_values(store)
    assert values and {sealed_key_id(v) for v in values} == {key_id(new)}
    for t in tasks:
        found = await store.get_task(t.id)
        assert found is not None and found.payload == PAYLOAD
    await _close(store, opened)

    only_new = await _open(db_url, opened, new)
    await check_keys(only_new.db)  # the old key is no longer needed
    page = await only_new.list_executions_json(ExecutionFilter(), RESULT_SHAPE, 100)
    results = sorted(next(iter(orjson.loads(i)["result"])) for i in page.items)
    assert results == ["after"] * 40 + ["before"] * 20


async def test_rotation_never_waits_on_a_row_a_live_transaction_holds(
    pg_url: str, opened: list[SqlStore]
) -> None:
    """A claim or a settle holding a row must not make rotation wait while it holds locks
    of its own (the two would deadlock): rotation reseals every other row, then comes back
    to the held one once it is free."""
    old, new = os.urandom(32), os.urandom(32)
    store = await _open(pg_url, opened, old)
    owner = await store.create_user(make_user())
    tasks = sorted(
        (make_task(owner.id, payload=PAYLOAD, handler="echo") for _ in range(12)),
        key=lambda t: t.id,
    )
    await store.create_tasks([(t, due_job(t)) for t in tasks])
    await _close(store, opened)
    store = await _open(pg_url, opened, new, old)
    held = tasks[5].id
    holder = await asyncpg.connect(pg_url)
    try:
        live = holder.transaction()
        await live.start()
        await holder.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", held)
        rotating = asyncio.create_task(rotate(store.db, batch_size=4, pause_s=0))
        others = [t.id for t in tasks if t.id != held]
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            rows = await store.db.fetch("SELECT payload AS v FROM tasks WHERE id = ANY($1)", others)
            if {sealed_key_id(r["v"]) for r in rows} == {key_id(new)}:
                break
            assert asyncio.get_running_loop().time() < deadline, "rotation waited on a held row"
            await asyncio.sleep(0.02)
        assert not rotating.done()
        await live.rollback()
        await asyncio.wait_for(rotating, 30)
    finally:
        await holder.close()
    row = await store.db.fetchrow("SELECT payload AS v FROM tasks WHERE id = $1", held)
    assert row is not None and sealed_key_id(row["v"]) == key_id(new)


async def test_webhook_secrets_and_messages_are_sealed_and_rotate(
    db_url: str, opened: list[SqlStore]
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    store = await _open(db_url, opened, old)
    store.outbox = WebhookOutbox(store.db)
    owner = await store.create_user(make_user())
    hooks = WebhookService(WebhookRecords(store.db), WebhookSettings())
    endpoint, secret = await hooks.create(owner, "https://example.com/hook", ["*"], "")
    await store.create_task(make_task(owner.id, name=SECRET, org_id=endpoint.org_id))
    raw = await store.db.fetchrow("SELECT secret FROM webhook_endpoints")
    body = await store.db.fetchrow("SELECT body FROM webhook_deliveries")
    assert raw is not None and body is not None
    assert sealed_key_id(raw["secret"]) == key_id(old) and secret not in raw["secret"]
    assert sealed_key_id(body["body"]) == key_id(old) and SECRET not in body["body"]
    await _close(store, opened)

    store = await _open(db_url, opened, new, old)
    assert (await rotate(store.db, batch_size=7, pause_s=0)).resealed >= 2
    await _close(store, opened)
    only_new = await _open(db_url, opened, new)
    await check_keys(only_new.db)
    records = WebhookRecords(only_new.db)
    [claimed] = await records.claim("node", {}, 10, 4, 30, utcnow())
    assert claimed.endpoint_id == endpoint.id and claimed.secrets == (secret,)
    message = orjson.loads(claimed.body)
    assert (message["type"], message["data"]["name"]) == ("task.created", SECRET)
