"""/api/v1/workflows and /api/v1/workflow-runs: define workflows, run, cancel and retry
their runs (DESIGN.md §9).

Declared here; the handlers, in `taskflowd.api.views.workflows`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation
from taskflowd.workflows.service import WorkflowService

VIEWS = "taskflowd.api.views.workflows"
PREFIX = "/api/v1/workflows"
RUNS = "/api/v1/workflow-runs"
WORKFLOWS_KEY = web.AppKey("taskflowd.workflows", WorkflowService)


def install(api: ApiRegistry) -> None:
    user = Access.USER
    one = f"{PREFIX}/{ID_PARAM}"
    run = f"{RUNS}/{ID_PARAM}"
    for operation in (
        Operation(
            "GET",
            PREFIX,
            "list_workflows",
            "The org's workflows (site admins without an org header: all), newest first",
            "workflows",
            user,
            query="schemas.ListQuery",
            response="schemas_workflows.WorkflowList",
        ),
        Operation(
            "POST",
            PREFIX,
            "create_workflow",
            "Create a workflow: a DAG of steps (422 names a cycle as a → b → a), optionally "
            "on a cron schedule (honours Idempotency-Key)",
            "workflows",
            user,
            status=201,
            body="schemas_workflows.WorkflowCreate",
            response="schemas_workflows.WorkflowOut",
            problems=(403,),
        ),
        Operation(
            "GET",
            one,
            "get_workflow",
            "Read a workflow",
            "workflows",
            user,
            response="schemas_workflows.WorkflowOut",
        ),
        Operation(
            "PATCH",
            one,
            "update_workflow",
            "Change a workflow; runs already started keep their steps",
            "workflows",
            user,
            body="schemas_workflows.WorkflowPatch",
            response="schemas_workflows.WorkflowOut",
            problems=(403,),
        ),
        Operation(
            "DELETE",
            one,
            "delete_workflow",
            "Delete a workflow and cancel its running runs",
            "workflows",
            user,
            status=204,
            problems=(403,),
        ),
        Operation(
            "POST",
            f"{one}/run",
            "run_workflow",
            "Start a run of the workflow now (honours Idempotency-Key)",
            "workflows",
            user,
            status=202,
            response="schemas_workflows.WorkflowRunOut",
            body_required=False,
            problems=(403,),
        ),
        Operation(
            "POST",
            f"{one}/pause",
            "pause_workflow",
            "Pause: no step of its runs starts until resumed",
            "workflows",
            user,
            response="schemas_workflows.WorkflowOut",
            body_required=False,
            problems=(403,),
        ),
        Operation(
            "POST",
            f"{one}/resume",
            "resume_workflow",
            "Resume a paused workflow",
            "workflows",
            user,
            response="schemas_workflows.WorkflowOut",
            body_required=False,
            problems=(403,),
        ),
        Operation(
            "GET",
            RUNS,
            "list_workflow_runs",
            "Runs of the org's workflows, newest first (?workflowId= for one)",
            "workflow-runs",
            user,
            query="schemas_workflows.WorkflowRunQuery",
            response="schemas_workflows.WorkflowRunList",
        ),
        Operation(
            "GET",
            run,
            "get_workflow_run",
            "A run with the state of each step",
            "workflow-runs",
            user,
            response="schemas_workflows.WorkflowRunOut",
        ),
        Operation(
            "POST",
            f"{run}/cancel",
            "cancel_workflow_run",
            "Cancel a run: queued steps at once, running ones are asked to stop",
            "workflow-runs",
            user,
            response="schemas_workflows.WorkflowRunOut",
            body_required=False,
            problems=(403,),
        ),
        Operation(
            "POST",
            f"{run}/retry",
            "retry_workflow_run",
            "Re-run the failed steps of a FAILED run and those skipped because of them",
            "workflow-runs",
            user,
            status=202,
            response="schemas_workflows.WorkflowRunOut",
            problems=(403, 409),
            body_required=False,
        ),
    ):
        api.add(operation, VIEWS)
