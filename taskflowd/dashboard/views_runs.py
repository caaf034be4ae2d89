"""Execution pages (list, detail with retry timeline, cancel) and the dead-letter queue."""

from __future__ import annotations

import asyncio

from aiohttp import web

from taskflowd.dashboard.acting import actor, refuse_read_only
from taskflowd.dashboard.context import PREFIX, dashboard, redirect, render
from taskflowd.domain.entities import Task
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.domain.errors import Conflict, NotFound, ValidationFailed
from taskflowd.store.base import ExecutionFilter

PAGE_SIZE = 50
MAX_BULK = 500
MAX_CURSOR_CHARS = 512


async def task_names(request: web.Request, task_ids: set[str]) -> dict[str, Task]:
    """The tasks behind `task_ids` the viewer may see (deleted ones are left out)."""
    ctx, user = dashboard(request), actor(request)

    async def one(task_id: str) -> Task | None:
        try:
            return await ctx.tasks.get(user, task_id)
        except NotFound:
            return None

    found = await asyncio.gather(*(one(t) for t in sorted(task_ids)))
    return {t.id: t for t in found if t is not None}


def _cursor(request: web.Request) -> str | None:
    return request.query.get("cursor", "")[:MAX_CURSOR_CHARS] or None


async def executions_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    raw_status = request.query.get("status", "")
    status = ExecutionStatus(raw_status) if raw_status in ExecutionStatus.__members__ else None
    task_id = request.query.get("taskId", "").strip()[:64] or None
    filters = ExecutionFilter(task_id=task_id, status=status)
    cursor = _cursor(request)
    try:
        page = await ctx.tasks.list_executions(user, filters, PAGE_SIZE, cursor)
    except ValidationFailed:
        cursor = None
        page = await ctx.tasks.list_executions(user, filters, PAGE_SIZE, None)
    tasks = await task_names(request, {e.task_id for e in page.items})
    params = {k: v for k, v in request.query.items() if k != "cursor" and v}
    return render(
        request,
        "executions.html",
        {
            "executions": page.items,
            "tasks": tasks,
            "next_cursor": page.next_cursor,
            "paged": cursor is not None,
            "params": params,
            "statuses": list(ExecutionStatus),
            "filters": {"status": status.value if status else "", "taskId": task_id or ""},
            "filter_task": tasks.get(task_id) if task_id else None,
        },
        section="executions",
    )


async def execution_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    detail = await ctx.tasks.execution(user, request.match_info["id"])
    tasks = await task_names(request, {detail.execution.task_id})
    return render(
        request,
        "execution_detail.html",
        {
            "execution": detail.execution,
            "history": detail.retry_history,
            "task": tasks.get(detail.execution.task_id),
        },
        section="executions",
    )


async def cancel_execution(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    execution_id = request.match_info["id"]
    here = f"{PREFIX}/executions/{execution_id}"
    if refused := refuse_read_only(request, here):
        return refused
    try:
        await ctx.tasks.cancel(user, execution_id)
    except Conflict as exc:
        return redirect(request, here, str(exc).capitalize() + ".", error=True)
    return redirect(request, here, "Cancellation requested.")


async def dead_letter_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    cursor = _cursor(request)
    try:
        page = await ctx.tasks.list_dead_letter(user, PAGE_SIZE, cursor)
    except ValidationFailed:
        cursor = None
        page = await ctx.tasks.list_dead_letter(user, PAGE_SIZE, None)
    tasks = await task_names(request, {d.task_id for d in page.items})
    return render(
        request,
        "dead_letter.html",
        {
            "entries": page.items,
            "tasks": tasks,
            "next_cursor": page.next_cursor,
            "paged": cursor is not None,
        },
        section="dead-letter",
    )


async def dead_letter_action(request: web.Request) -> web.Response:
    """Retry or delete the selected entries (one or many); reports what happened."""
    ctx, user = dashboard(request), actor(request)
    form = await request.post()
    action = form.get("action")
    ids = [v for v in form.getall("id", []) if isinstance(v, str)][:MAX_BULK]
    here = f"{PREFIX}/dead-letter"
    if refused := refuse_read_only(request, here):
        return refused
    if action not in ("retry", "delete"):
        return redirect(request, here, "Choose retry or delete.", error=True)
    if not ids:
        return redirect(request, here, "Select at least one job first.", error=True)
    done = missing = 0
    for entry_id in ids:
        try:
            if action == "retry":
                await ctx.tasks.retry_dead_letter(user, entry_id)
            else:
                await ctx.tasks.delete_dead_letter(user, entry_id)
            done += 1
        except NotFound:
            missing += 1
    verb = "Queued for retry" if action == "retry" else "Deleted"
    message = f"{verb}: {done} job{'s' if done != 1 else ''}."
    if missing:
        message += f" {missing} were already gone (retried or deleted elsewhere)."
    return redirect(request, here, message, error=done == 0)
