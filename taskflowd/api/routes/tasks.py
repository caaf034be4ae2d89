"""/api/v1/tasks: create (one or a batch), list, read, change, delete, run (one or many
runs with their own payloads), pause and resume tasks.

Declared here; the handlers, in `taskflowd.api.views.tasks`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation
from taskflowd.services.tasks import TaskService

VIEWS = "taskflowd.api.views.tasks"
PREFIX = "/api/v1/tasks"
TASKS_KEY = web.AppKey("taskflowd.tasks", TaskService)
TASK_ID = ID_PARAM.replace("{id:", "{id:(?!batch$)")


def install(api: ApiRegistry) -> None:
    user = Access.USER
    one = f"{PREFIX}/{TASK_ID}"
    for operation in (
        Operation(
            "GET",
            PREFIX,
            "list_tasks",
            "List tasks, newest first",
            "tasks",
            user,
            query="schemas_tasks.TaskListQuery",
            response="schemas_tasks.TaskList",
            etag=True,
        ),
        Operation(
            "POST",
            PREFIX,
            "create_task",
            "Create a task (honours Idempotency-Key)",
            "tasks",
            user,
            status=201,
            body="schemas_tasks.TaskCreate",
            response="schemas_tasks.TaskOut",
            problems=(403, 409),
        ),
        Operation(
            "POST",
            f"{PREFIX}/batch",
            "create_tasks",
            "Create up to 500 tasks at once, all or nothing (honours Idempotency-Key)",
            "tasks",
            user,
            status=201,
            body="schemas_tasks.TaskBatchRequest",
            response="schemas_tasks.TaskItems",
            problems=(403, 409),
        ),
        Operation(
            "GET",
            one,
            "get_task",
            "One task",
            "tasks",
            user,
            response="schemas_tasks.TaskOut",
            etag=True,
        ),
        Operation(
            "PATCH",
            one,
            "update_task",
            "Change a task",
            "tasks",
            user,
            body="schemas_tasks.TaskPatch",
            response="schemas_tasks.TaskOut",
            problems=(403, 409),
        ),
        Operation(
            "DELETE",
            one,
            "delete_task",
            "Delete a task (soft); cancels its queued jobs",
            "tasks",
            user,
            status=204,
        ),
        Operation(
            "POST",
            f"{one}/run",
            "run_task",
            "Run now, or at runAt / after delayMs, optionally with its own payload and "
            "priority (honours Idempotency-Key)",
            "tasks",
            user,
            status=202,
            body="schemas_tasks.RunRequest",
            body_required=False,
            response="schemas_tasks.ExecutionOut",
            problems=(403, 409),
        ),
        Operation(
            "POST",
            f"{one}/runs",
            "run_task_many",
            "Queue up to 1,000 runs with their own payloads at once, all or nothing "
            "(honours Idempotency-Key, and idempotencyKey per run)",
            "tasks",
            user,
            status=202,
            body="schemas_tasks.RunsRequest",
            response="schemas_tasks.ExecutionItems",
            problems=(403, 409),
        ),
        Operation(
            "POST",
            f"{one}/pause",
            "pause_task",
            "Pause a task",
            "tasks",
            user,
            response="schemas_tasks.TaskOut",
            problems=(409,),
        ),
        Operation(
            "POST",
            f"{one}/resume",
            "resume_task",
            "Resume a paused task",
            "tasks",
            user,
            response="schemas_tasks.TaskOut",
            problems=(409,),
        ),
        Operation(
            "GET",
            f"{one}/executions",
            "task_executions",
            "Executions of one task",
            "tasks",
            user,
            query="schemas_tasks.TaskExecutionsQuery",
            response="schemas_tasks.ExecutionList",
            etag=True,
        ),
    ):
        api.add(operation, VIEWS)
