"""Several real daemons on one PostgreSQL (and, for the Redis queue, one Redis).

`queue_url` runs a test once with the job queue in the database and once on a private
Redis server (`private_redis` of tests/conftest.py; skipped, saying why, when the Redis
queue or that server cannot run, and failed for the server under CI=true). `Cluster`
starts nodes with the settings every node of one cluster shares, and `cluster_jobs`
creates tasks from the test process through the cluster's own queue, as the API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import pytest

from taskflowd.config import Settings
from taskflowd.domain.entities import Execution, Task, utcnow
from taskflowd.domain.enums import TaskStatus, TaskType
from taskflowd.domain.jobs import new_execution, own_job_id
from taskflowd.domain.rules import TaskSpec
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue import open_queue
from taskflowd.services.tasks import SPEC_FIELDS, TaskService
from taskflowd.store import open_store
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DaemonProcess, Daemons, Jobs
from tests.integration.cluster.private_redis import PrivateRedis

# Nodes notice each other within a second or two: dead after 3 s of silence.
CLUSTER_ENV = {
    "TASKFLOW_CLUSTER__HEARTBEAT_S": "0.5",
    "TASKFLOW_CLUSTER__NODE_TTL_S": "3",
}


@pytest.fixture(params=["database", "redis"])
def queue_url(request: pytest.FixtureRequest) -> str:
    """ "database", or the URL of a private Redis server of this test's own."""
    if request.param == "database":
        return "database"
    try:
        import taskflowd.queue.redis  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the Redis queue is not available: {exc}")
    server: PrivateRedis = request.getfixturevalue("private_redis")
    return server.url


class Cluster:
    """Nodes of one cluster: same database, same queue, same extra settings."""

    def __init__(
        self, daemons: Daemons, database: str, queue: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.daemons = daemons
        self.database = database
        self.queue = queue
        self.env = {**CLUSTER_ENV, **(env or {})}

    def start(
        self, *args: str, env: Mapping[str, str] | None = None, healthy: bool = True
    ) -> DaemonProcess:
        return self.daemons.start(
            "--database",
            self.database,
            "--queue",
            self.queue,
            *args,
            env={**self.env, **(env or {})},
            healthy=healthy,
        )

    async def astart(self, *args: str, env: Mapping[str, str] | None = None) -> DaemonProcess:
        return await asyncio.to_thread(self.start, *args, env=env)

    async def start_many(self, count: int, *args: str) -> list[DaemonProcess]:
        """One node first (it migrates and creates the admin), then the rest at once."""
        first = await self.astart(*args)
        rest = await asyncio.gather(*(self.astart(*args) for _ in range(count - 1)))
        nodes = [first, *rest]
        assert len({n.node_id for n in nodes}) == count
        return nodes

    async def stop_all(self) -> None:
        running = [d for d in self.daemons.started if d.running]
        codes = await asyncio.gather(*(asyncio.to_thread(d.terminate) for d in running))
        assert codes == [0] * len(codes), [d.stderr[-3000:] for d in running]


@contextlib.asynccontextmanager
async def cluster_jobs(database: str, queue: str) -> AsyncIterator[Jobs]:
    """`Jobs` on the cluster's database and queue, acting as the bootstrap admin."""
    settings = Settings(database=database, queue=queue)
    store = open_store(database)
    await store.start()
    queue_ = open_queue(settings, store)
    await queue_.start()
    registry = HandlerRegistry.build(
        shell_enabled=False,
        http_allow_private=False,
        http_allowed_networks=(),
        http_timeout_s=5.0,
        http_max_response_bytes=1024,
        shell_max_output_bytes=1024,
        load_plugins=False,
    )
    try:
        actor = await store.get_user_by_email(ADMIN_EMAIL)
        assert actor is not None, "start a node first: it creates the admin"
        yield Jobs(store, TaskService(store, queue_, registry), actor)
    finally:
        await registry.close()
        await queue_.stop()
        await store.stop()


async def create_one_time(
    jobs: Jobs, count: int, handler: str = "echo", payload: Any = None, chunk: int = 500
) -> list[Task]:
    """`count` one-time tasks, each with its first execution, committed `chunk` at a time
    and then announced to the queue: what `TaskService.create` does for one task, in bulk
    (so the test process is not the bottleneck). The payload defaults to {"i": n}."""
    created: list[Task] = []
    for start in range(0, count, chunk):
        now = utcnow()
        tasks: list[Task] = []
        firsts: list[Execution] = []
        for i in range(start, min(start + chunk, count)):
            spec = TaskSpec(
                name=f"{handler} {i}",
                type=TaskType.ONE_TIME,
                handler=handler,
                payload={"i": i} if payload is None else payload,
            )
            task = Task(
                id=str(uuid.uuid4()),
                status=TaskStatus.ACTIVE,
                created_by=jobs.actor.id,
                created_at=now,
                updated_at=now,
                next_run_at=now,
                **{name: getattr(spec, name) for name in SPEC_FIELDS},
            )
            tasks.append(task)
            firsts.append(new_execution(task, now, own_job_id(task.id)))
        await jobs.store.create_tasks(list(zip(tasks, firsts, strict=True)))
        await jobs.service.queue.announce(firsts)
        created += tasks
    return created


class Api:
    """HTTP calls to nodes from an async test, without any proxy from the environment."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(
        self,
        node: DaemonProcess,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, node.url(path), json=json, headers=headers
        ) as response:
            text = await response.text()
            body: Any = text
            if response.content_type.endswith("json"):
                body = await response.json(content_type=None)
            return response.status, body

    async def login(
        self, node: DaemonProcess, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD
    ) -> str:
        status, body = await self.call(
            node, "POST", "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert status == 200, body
        token: str = body["accessToken"]
        return token

    async def ready(self, node: DaemonProcess) -> tuple[int, dict[str, Any]]:
        status, body = await self.call(node, "GET", "/ready")
        return status, body


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield Api(session)


_SAMPLE = re.compile(
    r'^taskflow_jobs_total\{handler="(?P<h>[^"]*)",outcome="(?P<o>\w+)"\} (?P<v>\S+)$'
)


async def jobs_counted(api: Api, nodes: Sequence[DaemonProcess], outcome: str) -> list[int]:
    """Each node's own count of finished attempts with `outcome` (from its /metrics)."""
    counts = []
    for node in nodes:
        status, text = await api.call(node, "GET", "/metrics")
        assert status == 200
        total = 0.0
        for line in str(text).splitlines():
            found = _SAMPLE.match(line)
            if found and found["o"] == outcome:
                total += float(found["v"])
        counts.append(int(total))
    return counts
