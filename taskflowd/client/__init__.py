"""A typed Python client of the taskflowd HTTP API.

`AsyncClient` (coroutines) and `Client` (blocking calls, usable from any code) cover
every operation: tasks and their runs, executions (with `wait`), dead letters, API keys,
sign-in and user administration, statistics and health. Creates and runs carry an
`Idempotency-Key`, so the retries on connection errors, 429 and 503 never do a thing
twice; any other error is an `ApiError` with the server's problem details.

    async with AsyncClient("http://127.0.0.1:8080", api_key="tfk_…") as client:
        task = await client.tasks.create(NewTask("resize", type=TaskType.ON_DEMAND))
        run = await client.tasks.run(task.id, {"image": "cat.png"})
        done = await client.executions.wait(run.id)

This package imports nothing of the daemon but its plain enums.
"""

from taskflowd.client.aio import DEFAULT_URL, AsyncClient
from taskflowd.client.codec import encode
from taskflowd.client.errors import (
    ApiError,
    FieldProblem,
    ProtocolError,
    TaskflowError,
    TransportError,
)
from taskflowd.client.models import (
    UNSET,
    ApiKey,
    Check,
    DeadLetter,
    Execution,
    ExecutionDetail,
    Health,
    NewApiKey,
    NewRun,
    NewTask,
    Node,
    OrgStats,
    Page,
    Readiness,
    RetryRecord,
    RunTimes,
    Stats,
    Task,
    TaskChanges,
    Throughput,
    TokenPair,
    Unset,
    User,
)
from taskflowd.client.resources import WaitTimeout
from taskflowd.client.sync import Client
from taskflowd.client.transport import NO_RETRIES, RetryPolicy
from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, Role, TaskStatus, TaskType

__all__ = [
    "DEFAULT_URL",
    "NO_RETRIES",
    "UNSET",
    "ApiError",
    "ApiKey",
    "AsyncClient",
    "Check",
    "Client",
    "DeadLetter",
    "Execution",
    "ExecutionDetail",
    "ExecutionStatus",
    "FieldProblem",
    "Health",
    "MisfirePolicy",
    "NewApiKey",
    "NewRun",
    "NewTask",
    "Node",
    "OrgStats",
    "Page",
    "ProtocolError",
    "Readiness",
    "RetryPolicy",
    "RetryRecord",
    "Role",
    "RunTimes",
    "Stats",
    "Task",
    "TaskChanges",
    "TaskStatus",
    "TaskType",
    "TaskflowError",
    "Throughput",
    "TokenPair",
    "TransportError",
    "Unset",
    "User",
    "WaitTimeout",
    "encode",
]
