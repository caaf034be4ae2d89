"""/api/v1/executions and /api/v1/dead-letter: runs, their retry history, and failed jobs."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.acting import current_actor
from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation
from taskflowd.api.responses import json_bytes, no_content, page_response, read_response
from taskflowd.api.routes.tasks import TASKS_KEY
from taskflowd.api.schemas import ListQuery
from taskflowd.api.schemas_tasks import (
    DEAD_LETTER_SHAPE,
    EXECUTION_SHAPE,
    RETRY_SHAPE,
    DeadLetterList,
    ExecutionDetailOut,
    ExecutionList,
    ExecutionListQuery,
    ExecutionOut,
)
from taskflowd.api.shapes import choose, render
from taskflowd.api.validation import parse_query
from taskflowd.store.base import ExecutionFilter

EXECUTIONS = "/api/v1/executions"
DEAD_LETTER = "/api/v1/dead-letter"


async def list_executions(request: web.Request) -> web.Response:
    query = parse_query(request, ExecutionListQuery)
    filters = ExecutionFilter(task_id=query.task_id, status=query.status)
    shape = choose(EXECUTION_SHAPE, query.fields)
    page = await request.app[TASKS_KEY].executions_json(
        await current_actor(request), filters, shape, query.limit, query.cursor
    )
    return page_response(request, page)


async def get_execution(request: web.Request) -> web.Response:
    found = await request.app[TASKS_KEY].execution_json(
        await current_actor(request), request.match_info["id"], EXECUTION_SHAPE, RETRY_SHAPE
    )
    return read_response(request, found.encode())


async def cancel_execution(request: web.Request) -> web.Response:
    execution = await request.app[TASKS_KEY].cancel(
        await current_actor(request), request.match_info["id"]
    )
    return json_bytes(render(EXECUTION_SHAPE, execution))


async def list_dead_letter(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await request.app[TASKS_KEY].dead_letter_json(
        await current_actor(request), DEAD_LETTER_SHAPE, query.limit, query.cursor
    )
    return page_response(request, page)


async def retry_dead_letter(request: web.Request) -> web.Response:
    execution = await request.app[TASKS_KEY].retry_dead_letter(
        await current_actor(request), request.match_info["id"]
    )
    return json_bytes(render(EXECUTION_SHAPE, execution), status=202)


async def delete_dead_letter(request: web.Request) -> web.Response:
    await request.app[TASKS_KEY].delete_dead_letter(
        await current_actor(request), request.match_info["id"]
    )
    return no_content()


def install(api: ApiRegistry) -> None:
    user = Access.USER
    for operation in (
        Operation(
            "GET",
            EXECUTIONS,
            list_executions,
            "List executions, newest first",
            "executions",
            user,
            query=ExecutionListQuery,
            response=ExecutionList,
            etag=True,
        ),
        Operation(
            "GET",
            f"{EXECUTIONS}/{ID_PARAM}",
            get_execution,
            "One execution with its retry history",
            "executions",
            user,
            response=ExecutionDetailOut,
            etag=True,
        ),
        Operation(
            "POST",
            f"{EXECUTIONS}/{ID_PARAM}/cancel",
            cancel_execution,
            "Cancel a queued or running execution",
            "executions",
            user,
            response=ExecutionOut,
            problems=(409,),
        ),
        Operation(
            "GET",
            DEAD_LETTER,
            list_dead_letter,
            "Dead-lettered jobs, newest first",
            "dead-letter",
            user,
            query=ListQuery,
            response=DeadLetterList,
            etag=True,
        ),
        Operation(
            "POST",
            f"{DEAD_LETTER}/{ID_PARAM}/retry",
            retry_dead_letter,
            "Give a dead-lettered job one more attempt",
            "dead-letter",
            user,
            status=202,
            response=ExecutionOut,
        ),
        Operation(
            "DELETE",
            f"{DEAD_LETTER}/{ID_PARAM}",
            delete_dead_letter,
            "Delete a dead-lettered job",
            "dead-letter",
            user,
            status=204,
        ),
    ):
        api.add(operation)
