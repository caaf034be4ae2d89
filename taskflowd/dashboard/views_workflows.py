"""Workflow pages: the list, and one workflow drawn as a graph with its run history, the
selected run's steps (coloured live) and the run, cancel and retry buttons.

Changes go through `WorkflowService`, which refuses a VIEWER (403 page): the buttons are
only shown to those who may press them, and a form posted anyway is refused there.
"""

from __future__ import annotations

from aiohttp import web

from taskflowd.dashboard.acting import actor
from taskflowd.dashboard.context import PREFIX, dashboard, redirect, render
from taskflowd.dashboard.graph_svg import draw
from taskflowd.domain.errors import Conflict, NotFound, ValidationFailed
from taskflowd.workflows.graph import build
from taskflowd.workflows.model import WorkflowRun

PAGE_SIZE = 50
RUNS_SHOWN = 25
MAX_CURSOR_CHARS = 512


async def workflows_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    cursor = request.query.get("cursor", "")[:MAX_CURSOR_CHARS] or None
    try:
        page = await ctx.workflows.list(user, PAGE_SIZE, cursor)
    except ValidationFailed:
        cursor = None
        page = await ctx.workflows.list(user, PAGE_SIZE, None)
    return render(
        request,
        "workflows.html",
        {"workflows": page.items, "next_cursor": page.next_cursor, "paged": cursor is not None},
        section="workflows",
    )


async def _selected(
    request: web.Request, workflow_id: str, runs: list[WorkflowRun]
) -> WorkflowRun | None:
    """The run chosen with `?run=` (one of this workflow's), else the newest one."""
    ctx, user = dashboard(request), actor(request)
    chosen = request.query.get("run", "")[:64]
    run_id = chosen or (runs[0].id if runs else None)
    if run_id is None:
        return None
    try:
        run = await ctx.workflows.get_run(user, run_id)
    except NotFound:
        if chosen:
            raise
        return None
    if run.workflow_id != workflow_id:
        raise NotFound(f"workflow run {run_id} not found")
    return run


async def workflow_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    workflow = await ctx.workflows.get(user, request.match_info["id"])
    runs = (await ctx.workflows.list_runs(user, workflow.id, RUNS_SHOWN, None)).items
    run = await _selected(request, workflow.id, runs)
    statuses = {s.key: s.status for s in run.steps} if run is not None else {}
    return render(
        request,
        "workflow_detail.html",
        {
            "workflow": workflow,
            "drawing": draw(build(run.graph if run is not None else workflow.steps), statuses),
            "runs": runs,
            "run": run,
        },
        section="workflows",
    )


def _run_url(workflow_id: str, run_id: str) -> str:
    return f"{PREFIX}/workflows/{workflow_id}?run={run_id}"


async def run_workflow(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    run = await ctx.workflows.run(user, request.match_info["id"])
    return redirect(request, _run_url(run.workflow_id, run.id), f"Started run {run.id[:8]}.")


async def run_action(request: web.Request) -> web.Response:
    """Cancel or retry a run, then show it."""
    ctx, user = dashboard(request), actor(request)
    run = await ctx.workflows.get_run(user, request.match_info["id"])
    here = _run_url(run.workflow_id, run.id)
    try:
        if request.match_info["action"] == "cancel":
            await ctx.workflows.cancel_run(user, run.id)
            message = "Run cancelled: queued steps will not start, running ones are stopped."
        else:
            await ctx.workflows.retry_run(user, run.id)
            message = "Retrying the failed steps of the run."
    except Conflict as exc:
        return redirect(request, here, str(exc).capitalize() + ".", error=True)
    return redirect(request, here, message)
