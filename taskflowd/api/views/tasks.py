"""/api/v1/tasks: create (one or a batch), list, read, change, delete, run (one or many
runs with their own payloads), pause and resume tasks.

The handlers; the routes are declared in `taskflowd.api.routes.tasks`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import hdrs, web

from taskflowd.api.acting import current_actor
from taskflowd.api.idempotency import Rendered, idempotent
from taskflowd.api.responses import json_bytes, no_content, page_response, read_response
from taskflowd.api.routes.tasks import PREFIX, TASKS_KEY
from taskflowd.api.schemas_tasks import (
    EXECUTION_SHAPE,
    NULLABLE_ON_PATCH,
    TASK_SHAPE,
    RunRequest,
    RunsRequest,
    TaskBatchRequest,
    TaskCreate,
    TaskExecutionsQuery,
    TaskListQuery,
    TaskPatch,
)
from taskflowd.api.security import limit_jobs
from taskflowd.api.shapes import as_dict, choose, render
from taskflowd.api.validation import parse_body, parse_optional_body, parse_query
from taskflowd.domain.entities import Execution, Task
from taskflowd.domain.enums import TaskType
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.domain.rules import RunSpec, TaskSpec
from taskflowd.logs import request_id_var
from taskflowd.services.tasks import TaskService
from taskflowd.store.base import ExecutionFilter, TaskFilter

# API names whose TaskSpec attribute is spelled differently.
_SPEC_NAMES = {"timeout": "timeout_ms"}


def _service(request: web.Request) -> TaskService:
    return request.app[TASKS_KEY]


def _infer_type(body: TaskCreate) -> TaskType:
    if body.type is not None:
        return body.type
    if body.cron_expression is not None:
        return TaskType.RECURRING
    if body.delay_ms is not None:
        return TaskType.DELAYED
    return TaskType.ONE_TIME


def _spec(body: TaskCreate) -> TaskSpec:
    return TaskSpec(
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


def _run_spec(body: RunRequest, idempotency_key: str | None = None) -> RunSpec:
    return RunSpec(
        payload=body.payload,
        has_payload="payload" in body.model_fields_set,
        priority=body.priority,
        run_at=body.run_at,
        delay_ms=body.delay_ms,
        idempotency_key=idempotency_key,
    )


def _task_location(task: Task) -> Mapping[str, str]:
    return {hdrs.LOCATION: f"{PREFIX}/{task.id}"}


def _one_task(task: Task) -> Rendered:
    return 201, render(TASK_SHAPE, task)


def _task_items(tasks: Sequence[Task]) -> Rendered:
    return 201, orjson.dumps({"items": [as_dict(TASK_SHAPE, t) for t in tasks]})


def _one_run(executions: Sequence[Execution]) -> Rendered:
    return 202, render(EXECUTION_SHAPE, executions[0])


def _run_items(executions: Sequence[Execution]) -> Rendered:
    return 202, orjson.dumps({"items": [as_dict(EXECUTION_SHAPE, e) for e in executions]})


async def create_task(request: web.Request) -> web.Response:
    body = await parse_body(request, TaskCreate)
    user = await current_actor(request)
    await limit_jobs(request, 1)
    return await idempotent(
        request,
        user,
        body.model_dump_json().encode(),
        lambda claim: _service(request).create(user, _spec(body), request_id_var.get(), claim),
        _one_task,
        _task_location,
    )


async def create_tasks(request: web.Request) -> web.Response:
    body = await parse_body(request, TaskBatchRequest)
    user = await current_actor(request)
    await limit_jobs(request, len(body.items))
    specs = [_spec(item) for item in body.items]
    return await idempotent(
        request,
        user,
        body.model_dump_json().encode(),
        lambda claim: _service(request).create_many(user, specs, request_id_var.get(), claim),
        _task_items,
    )


async def list_tasks(request: web.Request) -> web.Response:
    query = parse_query(request, TaskListQuery)
    filters = TaskFilter(
        status=query.status, type=query.type, handler=query.handler, name_contains=query.search
    )
    shape = choose(TASK_SHAPE, query.fields)
    page = await _service(request).list_json(
        await current_actor(request), filters, shape, query.limit, query.cursor
    )
    return page_response(request, page)


async def get_task(request: web.Request) -> web.Response:
    found = await _service(request).get_json(
        await current_actor(request), request.match_info["id"], TASK_SHAPE
    )
    return read_response(request, found.encode())


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
    task = await _service(request).update(
        await current_actor(request), request.match_info["id"], changes
    )
    return json_bytes(render(TASK_SHAPE, task))


async def delete_task(request: web.Request) -> web.Response:
    await _service(request).delete(await current_actor(request), request.match_info["id"])
    return no_content()


async def run_task(request: web.Request) -> web.Response:
    body = await parse_optional_body(request, RunRequest)
    user = await current_actor(request)
    await limit_jobs(request, 1)
    task_id = request.match_info["id"]
    spec = _run_spec(body)

    def location(executions: Sequence[Execution]) -> Mapping[str, str]:
        return {hdrs.LOCATION: f"/api/v1/executions/{executions[0].id}"}

    return await idempotent(
        request,
        user,
        body.model_dump_json(exclude_unset=True).encode(),
        lambda claim: _service(request).run(
            user, task_id, [spec], request_id_var.get(), claim, name_items=False
        ),
        _one_run,
        location,
        look_first=False,
    )


async def run_task_many(request: web.Request) -> web.Response:
    body = await parse_body(request, RunsRequest)
    user = await current_actor(request)
    await limit_jobs(request, len(body.items))
    task_id = request.match_info["id"]
    specs = [_run_spec(item, item.idempotency_key) for item in body.items]
    return await idempotent(
        request,
        user,
        body.model_dump_json(exclude_unset=True).encode(),
        lambda claim: _service(request).run(user, task_id, specs, request_id_var.get(), claim),
        _run_items,
        look_first=False,
    )


async def pause_task(request: web.Request) -> web.Response:
    task = await _service(request).pause(await current_actor(request), request.match_info["id"])
    return json_bytes(render(TASK_SHAPE, task))


async def resume_task(request: web.Request) -> web.Response:
    task = await _service(request).resume(await current_actor(request), request.match_info["id"])
    return json_bytes(render(TASK_SHAPE, task))


async def task_executions(request: web.Request) -> web.Response:
    query = parse_query(request, TaskExecutionsQuery)
    user = await current_actor(request)
    task = await _service(request).get(user, request.match_info["id"])
    filters = ExecutionFilter(task_id=task.id, status=query.status)
    shape = choose(EXECUTION_SHAPE, query.fields)
    page = await _service(request).executions_json(user, filters, shape, query.limit, query.cursor)
    return page_response(request, page)


# `batch` is a path of its own, never a task id (ids are UUIDs): without this, OPTIONS
# on /tasks/batch would advertise the methods of /tasks/{id} too.
