"""/api/v1/tasks: create, list, read, change, delete, run now, pause and resume tasks."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import hdrs, web
from pydantic import BaseModel

from taskflowd.api.idempotency import idempotent
from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation
from taskflowd.api.responses import etag_response, json_response, no_content
from taskflowd.api.schemas_tasks import (
    NULLABLE_ON_PATCH,
    ExecutionList,
    ExecutionListQuery,
    ExecutionOut,
    TaskCreate,
    TaskList,
    TaskListQuery,
    TaskOut,
    TaskPatch,
    execution_out,
    task_out,
)
from taskflowd.api.security import current_user
from taskflowd.api.validation import parse_body, parse_query
from taskflowd.domain.enums import TaskType
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.domain.rules import TaskSpec
from taskflowd.logs import request_id_var
from taskflowd.services.tasks import TaskService
from taskflowd.store.base import ExecutionFilter, TaskFilter

PREFIX = "/api/v1/tasks"
TASKS_KEY = web.AppKey("taskflowd.tasks", TaskService)
_TASK_FIELDS = frozenset(TaskOut.model_json_schema(by_alias=True)["properties"])
_EXECUTION_FIELDS = frozenset(ExecutionOut.model_json_schema(by_alias=True)["properties"])
# API names whose TaskSpec attribute is spelled differently.
_SPEC_NAMES = {"timeout": "timeout_ms"}


def _service(request: web.Request) -> TaskService:
    return request.app[TASKS_KEY]


def select_fields(item: BaseModel, fields: str | None, allowed: frozenset[str]) -> dict[str, Any]:
    """`item` as JSON, keeping only the comma-separated `fields` (all when None)."""
    data: dict[str, Any] = orjson.loads(orjson.dumps(item.model_dump(mode="python", by_alias=True)))
    if fields is None:
        return data
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = sorted(set(wanted) - allowed)
    if unknown or not wanted:
        raise ValidationFailed(
            [
                FieldError(
                    "fields",
                    f"unknown field(s): {', '.join(unknown) or '(none)'}; "
                    f"choose from {', '.join(sorted(allowed))}",
                )
            ]
        )
    return {name: data[name] for name in wanted}


def _infer_type(body: TaskCreate) -> TaskType:
    if body.type is not None:
        return body.type
    if body.cron_expression is not None:
        return TaskType.RECURRING
    if body.delay_ms is not None:
        return TaskType.DELAYED
    return TaskType.ONE_TIME


async def create_task(request: web.Request) -> web.Response:
    body = await parse_body(request, TaskCreate)
    user = current_user(request)

    async def make() -> web.Response:
        spec = TaskSpec(
            name=body.name,
            type=_infer_type(body),
            description=body.description,
            handler=body.handler,
            payload=body.payload,
            cron_expression=body.cron_expression,
            timezone=body.timezone,
            scheduled_at=body.scheduled_at,
            delay_ms=body.delay_ms,
            priority=body.priority,
            max_retries=body.max_retries,
            backoff_ms=body.backoff_ms,
            timeout_ms=body.timeout,
            rate_limit=body.rate_limit,
            concurrency=body.concurrency,
            misfire_policy=body.misfire_policy,
        )
        task = await _service(request).create(user, spec, request_id_var.get())
        return json_response(
            task_out(task), status=201, headers={hdrs.LOCATION: f"{PREFIX}/{task.id}"}
        )

    return await idempotent(request, user, body.model_dump_json().encode(), make)


async def list_tasks(request: web.Request) -> web.Response:
    query = parse_query(request, TaskListQuery)
    filters = TaskFilter(
        status=query.status, type=query.type, handler=query.handler, name_contains=query.search
    )
    page = await _service(request).list(current_user(request), filters, query.limit, query.cursor)
    items = [select_fields(task_out(t), query.fields, _TASK_FIELDS) for t in page.items]
    return json_response({"items": items, "nextCursor": page.next_cursor})


async def get_task(request: web.Request) -> web.Response:
    task = await _service(request).get(current_user(request), request.match_info["id"])
    return etag_response(request, task_out(task))


async def update_task(request: web.Request) -> web.Response:
    body = await parse_body(request, TaskPatch)
    changes: dict[str, Any] = {}
    errors = []
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name not in NULLABLE_ON_PATCH:
            alias = TaskPatch.model_fields[name].alias or name
            errors.append(FieldError(alias, "cannot be null"))
        changes[_SPEC_NAMES.get(name, name)] = value
    if errors:
        raise ValidationFailed(errors)
    task = await _service(request).update(current_user(request), request.match_info["id"], changes)
    return json_response(task_out(task))


async def delete_task(request: web.Request) -> web.Response:
    await _service(request).delete(current_user(request), request.match_info["id"])
    return no_content()


async def run_task(request: web.Request) -> web.Response:
    user = current_user(request)

    async def make() -> web.Response:
        execution = await _service(request).run_now(
            user, request.match_info["id"], request_id_var.get()
        )
        return json_response(
            execution_out(execution),
            status=202,
            headers={hdrs.LOCATION: f"/api/v1/executions/{execution.id}"},
        )

    return await idempotent(request, user, b"", make)


async def pause_task(request: web.Request) -> web.Response:
    task = await _service(request).pause(current_user(request), request.match_info["id"])
    return json_response(task_out(task))


async def resume_task(request: web.Request) -> web.Response:
    task = await _service(request).resume(current_user(request), request.match_info["id"])
    return json_response(task_out(task))


async def task_executions(request: web.Request) -> web.Response:
    query = parse_query(request, ExecutionListQuery)
    user = current_user(request)
    task = await _service(request).get(user, request.match_info["id"])
    filters = ExecutionFilter(task_id=task.id, status=query.status)
    page = await _service(request).list_executions(user, filters, query.limit, query.cursor)
    items = [select_fields(execution_out(e), query.fields, _EXECUTION_FIELDS) for e in page.items]
    return json_response({"items": items, "nextCursor": page.next_cursor})


def install(api: ApiRegistry) -> None:
    user = Access.USER
    one = f"{PREFIX}/{ID_PARAM}"
    for operation in (
        Operation(
            "GET",
            PREFIX,
            list_tasks,
            "List tasks, newest first",
            "tasks",
            user,
            query=TaskListQuery,
            response=TaskList,
        ),
        Operation(
            "POST",
            PREFIX,
            create_task,
            "Create a task (honours Idempotency-Key)",
            "tasks",
            user,
            status=201,
            body=TaskCreate,
            response=TaskOut,
            problems=(403, 409),
        ),
        Operation("GET", one, get_task, "One task", "tasks", user, response=TaskOut, etag=True),
        Operation(
            "PATCH",
            one,
            update_task,
            "Change a task",
            "tasks",
            user,
            body=TaskPatch,
            response=TaskOut,
            problems=(403,),
        ),
        Operation(
            "DELETE",
            one,
            delete_task,
            "Delete a task (soft); cancels its queued jobs",
            "tasks",
            user,
            status=204,
        ),
        Operation(
            "POST",
            f"{one}/run",
            run_task,
            "Run now (honours Idempotency-Key)",
            "tasks",
            user,
            status=202,
            response=ExecutionOut,
            problems=(409, 422),
        ),
        Operation(
            "POST",
            f"{one}/pause",
            pause_task,
            "Pause a task",
            "tasks",
            user,
            response=TaskOut,
            problems=(409,),
        ),
        Operation(
            "POST",
            f"{one}/resume",
            resume_task,
            "Resume a paused task",
            "tasks",
            user,
            response=TaskOut,
            problems=(409,),
        ),
        Operation(
            "GET",
            f"{one}/executions",
            task_executions,
            "Executions of one task",
            "tasks",
            user,
            query=ExecutionListQuery,
            response=ExecutionList,
        ),
    ):
        api.add(operation)
