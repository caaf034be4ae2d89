"""/api/v1/executions and /api/v1/dead-letter: runs, their retry history, and failed jobs.

The handlers; the routes are declared in `taskflowd.api.routes.executions`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.acting import current_actor
from taskflowd.api.responses import json_bytes, no_content, page_response, read_response
from taskflowd.api.routes.tasks import TASKS_KEY
from taskflowd.api.schemas import ListQuery
from taskflowd.api.schemas_tasks import (
    DEAD_LETTER_SHAPE,
    EXECUTION_SHAPE,
    RETRY_SHAPE,
    ExecutionListQuery,
)
from taskflowd.api.shapes import choose, render
from taskflowd.api.validation import parse_query
from taskflowd.store.base import ExecutionFilter


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
