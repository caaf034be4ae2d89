"""/api/v1/executions and /api/v1/dead-letter: runs, their retry history, and failed jobs.

Declared here; the handlers, in `taskflowd.api.views.executions`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation

VIEWS = "taskflowd.api.views.executions"
EXECUTIONS = "/api/v1/executions"
DEAD_LETTER = "/api/v1/dead-letter"


def install(api: ApiRegistry) -> None:
    user = Access.USER
    for operation in (
        Operation(
            "GET",
            EXECUTIONS,
            "list_executions",
            "List executions, newest first",
            "executions",
            user,
            query="schemas_tasks.ExecutionListQuery",
            response="schemas_tasks.ExecutionList",
            etag=True,
        ),
        Operation(
            "GET",
            f"{EXECUTIONS}/{ID_PARAM}",
            "get_execution",
            "One execution with its retry history",
            "executions",
            user,
            response="schemas_tasks.ExecutionDetailOut",
            etag=True,
        ),
        Operation(
            "POST",
            f"{EXECUTIONS}/{ID_PARAM}/cancel",
            "cancel_execution",
            "Cancel a queued or running execution",
            "executions",
            user,
            response="schemas_tasks.ExecutionOut",
            problems=(409,),
        ),
        Operation(
            "GET",
            DEAD_LETTER,
            "list_dead_letter",
            "Dead-lettered jobs, newest first",
            "dead-letter",
            user,
            query="schemas.ListQuery",
            response="schemas_tasks.DeadLetterList",
            etag=True,
        ),
        Operation(
            "POST",
            f"{DEAD_LETTER}/{ID_PARAM}/retry",
            "retry_dead_letter",
            "Give a dead-lettered job one more attempt",
            "dead-letter",
            user,
            status=202,
            response="schemas_tasks.ExecutionOut",
        ),
        Operation(
            "DELETE",
            f"{DEAD_LETTER}/{ID_PARAM}",
            "delete_dead_letter",
            "Delete a dead-lettered job",
            "dead-letter",
            user,
            status=204,
        ),
    ):
        api.add(operation, VIEWS)
