"""End to end: a login with a password and a job whose payload holds tokens leave the
log without them, while the lines about them are still there, with their context ids."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import orjson
import pytest

from taskflowd import logs
from taskflowd.background import Supervisor
from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError
from taskflowd.events import EventBus
from taskflowd.handlers.base import HandlerSpec, JobContext
from taskflowd.handlers.builtin import builtin_specs
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from taskflowd.worker.pool import WorkerPool
from tests.integration.engine.harness import WORKER, spec
from tests.integration.ops.conftest import PASSWORD, OpsStack

PAYLOAD_TOKEN = "tok-" + uuid.uuid4().hex
PAYLOAD_API_KEY = "key-" + uuid.uuid4().hex
PAYLOAD_BEARER = "bearer" + uuid.uuid4().hex
PAYLOAD_PASSWORD = "two words " + uuid.uuid4().hex


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def leaky(payload: JSON, ctx: JobContext) -> JSON:
    """A careless handler: logs its payload and fails with it in the message."""
    ctx.logger.info("calling upstream with %s", payload)
    raise RuntimeError(f"upstream refused {payload}")


def _accept(payload: JSON) -> list[FieldError]:
    return []


async def test_passwords_and_payload_tokens_never_reach_the_log(
    make_stack, store: SqlStore, captured: io.StringIO
) -> None:
    stack: OpsStack = await make_stack()
    email = f"log-{uuid.uuid4().hex[:8]}@example.com"
    user, access_token = await stack.sign_up(email)
    response = await stack.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD + " wrong"}
    )
    assert response.status == 401
    response = await stack.client.get(
        "/api/v1/stats", headers={"Authorization": f"Bearer {access_token}"}
    )
    assert response.status == 200

    await stack.engine.worker.stop()  # only the worker below, which knows "leaky", claims
    registry = HandlerRegistry([*builtin_specs(), HandlerSpec("leaky", leaky, _accept)])
    queue = SqlQueue(store.db)
    events = EventBus()
    fatal: list[str] = []
    supervisor = Supervisor(lambda name, exc: fatal.append(name))
    worker = WorkerPool(queue, registry, WORKER, "node-log", events, supervisor)
    tasks = TaskService(store, queue, registry)
    await queue.start()
    await worker.start()
    try:
        payload = {
            "token": PAYLOAD_TOKEN,
            "apiKey": PAYLOAD_API_KEY,
            "headers": {"Authorization": f"Bearer {PAYLOAD_BEARER}"},
            "password": PAYLOAD_PASSWORD,
        }
        task = await tasks.create(
            user, spec(handler="leaky", payload=payload), request_id="req-from-api"
        )
        await stack.engine.wait_until_final(task.id)
        await worker.drained()
    finally:
        await worker.stop()
        await queue.stop()
        await supervisor.cancel_all()
        await registry.close()
    assert not fatal

    text = captured.getvalue()
    for secret in (
        PASSWORD,
        access_token,
        PAYLOAD_TOKEN,
        PAYLOAD_API_KEY,
        PAYLOAD_BEARER,
        PAYLOAD_PASSWORD,
    ):
        assert secret not in text, f"a secret reached the log: {secret[:8]}…"
    lines = [orjson.loads(line) for line in text.splitlines()]
    # The lines are there, masked, and carry the ids of the job and the request behind it.
    job_lines = [line for line in lines if line.get("execution_id")]
    said = " ".join(str(line.get("msg", "")) + str(line.get("exception", "")) for line in job_lines)
    assert "calling upstream" in said and "upstream refused" in said and logs.REDACTED in said
    assert {line["task_id"] for line in job_lines} == {task.id}
    assert {line.get("request_id") for line in job_lines} == {"req-from-api"}
    assert any(line.get("route") == "/api/v1/auth/login" for line in lines)
