"""/api/v1/workflows and /api/v1/workflow-runs: define workflows, run, cancel and retry
their runs (DESIGN.md §9).

The handlers; the routes are declared in `taskflowd.api.routes.workflows`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from taskflowd.api.acting import current_actor
from taskflowd.api.idempotency import Rendered, idempotent
from taskflowd.api.responses import json_response, no_content, plain
from taskflowd.api.routes.workflows import WORKFLOWS_KEY
from taskflowd.api.schemas import ListQuery
from taskflowd.api.schemas_workflows import (
    StepIn,
    StepOut,
    StepRunOut,
    WorkflowCreate,
    WorkflowList,
    WorkflowOut,
    WorkflowPatch,
    WorkflowRunList,
    WorkflowRunOut,
    WorkflowRunQuery,
    WorkflowRunSummary,
)
from taskflowd.api.validation import parse_body, parse_query
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.store.base import IdempotencyClaim
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.model import Workflow, WorkflowRun, step_to_json
from taskflowd.workflows.service import Schedule, WorkflowService


def _service(request: web.Request) -> WorkflowService:
    return request.app[WORKFLOWS_KEY]


def _spec(step: StepIn) -> StepSpec:
    return StepSpec(
        key=step.key,
        handler=step.handler,
        payload=step.payload,
        timeout_ms=step.timeout,
        max_retries=step.max_retries,
        backoff_ms=step.backoff_ms,
        priority=step.priority,
        depends_on=tuple(step.depends_on),
        trigger=step.trigger,
        when=step.when,
    )


def workflow_out(w: Workflow) -> WorkflowOut:
    return WorkflowOut(
        id=w.id,
        name=w.name,
        description=w.description,
        status=w.status,
        steps=[StepOut.model_validate(step_to_json(s)) for s in w.steps],
        cron_expression=w.cron_expression,
        timezone=w.timezone,
        misfire_policy=w.misfire_policy,
        next_run_at=w.next_run_at,
        created_by=w.created_by,
        created_at=w.created_at,
        updated_at=w.updated_at,
    )


def _summary(run: WorkflowRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow_id": run.workflow_id,
        "status": run.status,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def run_out(run: WorkflowRun) -> WorkflowRunOut:
    steps = [
        StepRunOut(
            key=s.key,
            status=s.status,
            execution_id=s.execution_id,
            attempts=s.attempts,
            result=s.result,
            error=s.error,
            started_at=s.started_at,
            finished_at=s.finished_at,
            skip_cause=s.skip_cause,
        )
        for s in run.steps
    ]
    return WorkflowRunOut(**_summary(run), steps=steps)


def _id(request: web.Request) -> str:
    return request.match_info["id"]


def _workflow_rendered(workflow: Workflow) -> Rendered:
    return 201, orjson.dumps(plain(workflow_out(workflow)))


def _run_rendered(run: WorkflowRun) -> Rendered:
    return 202, orjson.dumps(plain(run_out(run)))


async def create_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, WorkflowCreate)
    actor = await current_actor(request)
    plan = Schedule(body.cron_expression, body.timezone, body.misfire_policy)
    steps = [_spec(s) for s in body.steps]

    async def create(claim: IdempotencyClaim | None) -> Workflow:
        return await _service(request).create(
            actor, body.name, body.description, steps, plan, claim
        )

    fingerprint = body.model_dump_json().encode()
    return await idempotent(request, actor, fingerprint, create, _workflow_rendered)


async def list_workflows(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await _service(request).list(await current_actor(request), query.limit, query.cursor)
    return json_response(
        WorkflowList(items=[workflow_out(w) for w in page.items], next_cursor=page.next_cursor)
    )


async def get_workflow(request: web.Request) -> web.Response:
    workflow = await _service(request).get(await current_actor(request), _id(request))
    return json_response(workflow_out(workflow))


async def update_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, WorkflowPatch)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name != "cron_expression":
            raise ValidationFailed([FieldError(name, "cannot be null")])
        changes[name] = [_spec(s) for s in value] if name == "steps" else value
    workflow = await _service(request).update(await current_actor(request), _id(request), changes)
    return json_response(workflow_out(workflow))


async def delete_workflow(request: web.Request) -> web.Response:
    await _service(request).delete(await current_actor(request), _id(request))
    return no_content()


async def run_workflow(request: web.Request) -> web.Response:
    actor = await current_actor(request)

    async def start(claim: IdempotencyClaim | None) -> WorkflowRun:
        return await _service(request).run(actor, _id(request), claim)

    return await idempotent(request, actor, b"", start, _run_rendered)


async def pause_workflow(request: web.Request) -> web.Response:
    workflow = await _service(request).pause(await current_actor(request), _id(request))
    return json_response(workflow_out(workflow))


async def resume_workflow(request: web.Request) -> web.Response:
    workflow = await _service(request).resume(await current_actor(request), _id(request))
    return json_response(workflow_out(workflow))


async def list_workflow_runs(request: web.Request) -> web.Response:
    query = parse_query(request, WorkflowRunQuery)
    page = await _service(request).list_runs(
        await current_actor(request), query.workflow_id, query.limit, query.cursor
    )
    items = [WorkflowRunSummary(**_summary(r)) for r in page.items]
    return json_response(WorkflowRunList(items=items, next_cursor=page.next_cursor))


async def get_workflow_run(request: web.Request) -> web.Response:
    run = await _service(request).get_run(await current_actor(request), _id(request))
    return json_response(run_out(run))


async def cancel_workflow_run(request: web.Request) -> web.Response:
    run = await _service(request).cancel_run(await current_actor(request), _id(request))
    return json_response(run_out(run))


async def retry_workflow_run(request: web.Request) -> web.Response:
    run = await _service(request).retry_run(await current_actor(request), _id(request))
    return json_response(run_out(run), status=202)
