"""The blocking `Client`: from plain code, from a thread whose event loop is running, its
life cycle, and that it mirrors `AsyncClient` method for method."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import uuid

import pytest

from taskflowd.client import (
    ApiError,
    AsyncClient,
    Client,
    ExecutionStatus,
    NewRun,
    NewTask,
    TaskType,
)
from tests.integration.client.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, QUICK_RETRIES, Node
from tests.integration.client.operations import CLIENT_METHODS, method_of

WAIT_S = 30.0


def client_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "taskflowd-client")


def admin_key(url: str) -> str:
    with Client(url, retry=QUICK_RETRIES) as client:
        client.auth.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        return client.api_keys.create("sync tests").key


def test_from_plain_code(sqlite_node: Node) -> None:
    name = f"sync-{uuid.uuid4().hex[:8]}"
    with Client(sqlite_node.url, api_key=admin_key(sqlite_node.url)) as client:
        task = client.tasks.create(NewTask(name, type=TaskType.ON_DEMAND, max_retries=0))
        execution = client.tasks.run(task.id, {"plain": True})
        done = client.executions.wait(execution.id, timeout_s=WAIT_S)
        assert (done.status, done.result) == (ExecutionStatus.COMPLETED, {"plain": True})

        runs = client.tasks.runs(task.id, [NewRun(i) for i in range(3)])
        for run in runs:
            client.executions.wait(run.id, timeout_s=WAIT_S)
        walked = [e.id for e in client.executions.iter(task_id=task.id, page_size=2)]
        assert sorted(walked) == sorted([execution.id, *(r.id for r in runs)])
        assert [t.id for t in client.tasks.iter(search=name, page_size=1)] == [task.id]

        with pytest.raises(ApiError) as missing:
            client.tasks.get(str(uuid.uuid4()))
        assert missing.value.status == 404
        assert client.health().status == "ok"
        assert client.ready().ready


async def test_from_a_thread_whose_loop_is_running(sqlite_node: Node) -> None:
    """A blocking call made from async code (a running loop in this very thread) works:
    the client's own loop runs elsewhere."""
    with Client(sqlite_node.url, retry=QUICK_RETRIES) as client:
        client.auth.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        task = client.tasks.create(NewTask("inside a loop", type=TaskType.ON_DEMAND))
        run = client.tasks.run(task.id, "hello")
        assert client.executions.wait(run.id, timeout_s=WAIT_S).result == "hello"
        assert client.auth.me().email == ADMIN_EMAIL


def test_close_ends_the_thread_and_further_calls(sqlite_node: Node) -> None:
    before = client_threads()
    client = Client(sqlite_node.url)
    assert client_threads() == before + 1
    assert client.health().status == "ok"
    client.close()
    client.close()
    assert client_threads() == before
    with pytest.raises(RuntimeError, match="closed"):
        client.health()


def test_mirrors_the_async_client() -> None:
    sync_client = Client()
    async_client = AsyncClient()
    try:
        for dotted in [*CLIENT_METHODS.values(), *ITER_METHODS, "executions.wait"]:
            blocking = inspect.signature(method_of(sync_client, dotted))
            coroutine = inspect.signature(method_of(async_client, dotted))
            assert blocking.parameters.keys() == coroutine.parameters.keys(), dotted
            for name, parameter in blocking.parameters.items():
                assert parameter.default == coroutine.parameters[name].default, (dotted, name)
                assert parameter.kind == coroutine.parameters[name].kind, (dotted, name)
    finally:
        sync_client.close()


ITER_METHODS = [
    "tasks.iter",
    "executions.iter",
    "dead_letters.iter",
    "api_keys.iter",
    "users.iter",
    "orgs.iter",
    "audit.iter",
    "audit.export",
    "webhooks.iter",
    "webhooks.iter_deliveries",
]


def test_importing_the_client_loads_no_server_code() -> None:
    probe = (
        "import sys, taskflowd.client; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('taskflowd'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.split())
    assert "taskflowd.client" in loaded
    assert loaded - {"taskflowd", "taskflowd.domain", "taskflowd.domain.enums"} == {
        m for m in loaded if m.startswith("taskflowd.client")
    }
