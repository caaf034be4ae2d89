"""Task pages: list with filters, detail, create and edit forms, actions, runs with a
payload of their own, cron preview."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from taskflowd.dashboard.acting import actor, refuse_read_only
from taskflowd.dashboard.context import PREFIX, dashboard, redirect, render
from taskflowd.dashboard.formatting import label, short_id, when
from taskflowd.dashboard.forms import (
    LABELS,
    RUN_LABELS,
    Form,
    blank_form,
    changes_of,
    form_of_task,
    read_form,
    read_run_form,
    run_form_of_task,
    to_run_spec,
    to_spec,
)
from taskflowd.domain import schedule
from taskflowd.domain.entities import Execution, Task, utcnow
from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, TaskStatus, TaskType
from taskflowd.domain.errors import Conflict, Forbidden, ValidationFailed
from taskflowd.store.base import ExecutionFilter, TaskFilter

PAGE_SIZE = 50
HISTORY_SIZE = 25
PREVIEW_RUNS = 10
MAX_QUERY_CHARS = 200
TIMEZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
)


def _choice(value: str, allowed: type[TaskStatus] | type[TaskType]) -> Any:
    try:
        return allowed(value) if value else None
    except ValueError:
        return None


# Executions that have started: a cron task's next tick waits as PENDING ahead of time
# and says nothing about how the task has been doing.
_STARTED = tuple(s for s in ExecutionStatus if s is not ExecutionStatus.PENDING)


async def last_outcomes(request: web.Request, tasks: list[Task]) -> dict[str, Execution]:
    """The newest started execution of each task (one indexed read per task shown)."""
    ctx, user = dashboard(request), actor(request)

    async def newest(task: Task) -> tuple[str, Execution | None]:
        filters = ExecutionFilter(task_id=task.id, statuses=_STARTED)
        page = await ctx.tasks.list_executions(user, filters, 1, None)
        return task.id, page.items[0] if page.items else None

    found = await asyncio.gather(*(newest(t) for t in tasks))
    return {task_id: e for task_id, e in found if e is not None}


async def tasks_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    q = request.query
    search = q.get("q", "").strip()[:MAX_QUERY_CHARS]
    handler = q.get("handler", "").strip()
    filters = TaskFilter(
        status=_choice(q.get("status", ""), TaskStatus),
        type=_choice(q.get("type", ""), TaskType),
        handler=handler if handler in ctx.handler_names else None,
        name_contains=search or None,
    )
    cursor = q.get("cursor") or None
    try:
        page = await ctx.tasks.list(user, filters, PAGE_SIZE, cursor)
    except ValidationFailed:
        page = await ctx.tasks.list(user, filters, PAGE_SIZE, None)
        cursor = None
    outcomes = await last_outcomes(request, page.items)
    params = {k: v for k, v in q.items() if k != "cursor" and v}
    return render(
        request,
        "tasks.html",
        {
            "tasks": page.items,
            "outcomes": outcomes,
            "next_cursor": page.next_cursor,
            "paged": cursor is not None,
            "filters": {
                "status": filters.status.value if filters.status else "",
                "type": filters.type.value if filters.type else "",
                "handler": filters.handler or "",
                "q": search,
            },
            "params": params,
            "statuses": list(TaskStatus),
            "types": list(TaskType),
            "handlers": ctx.handler_names,
        },
        section="tasks",
    )


def _next_runs(task: Task, count: int) -> list[datetime]:
    if task.type is not TaskType.RECURRING or not task.cron_expression:
        return []
    try:
        spec = schedule.parse_cron(task.cron_expression)
        tz = ZoneInfo(task.timezone)
    except (schedule.CronError, ValueError):
        return []
    return schedule.next_runs(spec, tz, utcnow(), count)


async def task_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    task = await ctx.tasks.get(user, request.match_info["id"])
    history = await ctx.tasks.list_executions(
        user, ExecutionFilter(task_id=task.id), HISTORY_SIZE, None
    )
    runs = await asyncio.to_thread(_next_runs, task, PREVIEW_RUNS)
    return render(
        request,
        "task_detail.html",
        {
            "task": task,
            "executions": history.items,
            "more_executions": history.next_cursor is not None,
            "next_runs": runs,
            "zone": task.timezone,
            "local_runs": [r.astimezone(ZoneInfo(task.timezone)) for r in runs],
        },
        section="tasks",
    )


def _form_page(
    request: web.Request, form: Form, task: Task | None, status: int = 200
) -> web.Response:
    return render(
        request,
        "task_form.html",
        {
            "form": form,
            "task": task,
            "labels": LABELS,
            "type_options": [(t.value, label(t.value)) for t in TaskType],
            "policy_options": [(p.value, label(p.value)) for p in MisfirePolicy],
            "handler_options": [(h, h) for h in dashboard(request).handler_names],
            "timezones": TIMEZONES,
        },
        status=status,
        section="tasks",
    )


async def new_task_page(request: web.Request) -> web.Response:
    if refused := refuse_read_only(request, f"{PREFIX}/tasks"):
        return refused
    return _form_page(request, blank_form(), None)


async def create_task(request: web.Request) -> web.Response:
    if refused := refuse_read_only(request, f"{PREFIX}/tasks"):
        return refused
    ctx, user = dashboard(request), actor(request)
    form = read_form(await request.post())
    spec = to_spec(form)
    if spec is not None:
        try:
            task = await ctx.tasks.create(user, spec)
        except ValidationFailed as exc:
            form.add(exc.errors)
        except Forbidden as exc:
            form.problem = str(exc)
        else:
            return redirect(request, f"{PREFIX}/tasks/{task.id}", f"Task “{task.name}” created.")
    return _form_page(request, form, None, status=422)


async def edit_task_page(request: web.Request) -> web.Response:
    if refused := refuse_read_only(request, f"{PREFIX}/tasks/{request.match_info['id']}"):
        return refused
    task = await dashboard(request).tasks.get(actor(request), request.match_info["id"])
    return _form_page(request, form_of_task(task), task)


async def update_task(request: web.Request) -> web.Response:
    if refused := refuse_read_only(request, f"{PREFIX}/tasks/{request.match_info['id']}"):
        return refused
    ctx, user = dashboard(request), actor(request)
    task = await ctx.tasks.get(user, request.match_info["id"])
    form = read_form(await request.post(), fixed_type=task.type)
    spec = to_spec(form)
    if spec is not None:
        try:
            updated = await ctx.tasks.update(user, task.id, changes_of(spec))
        except ValidationFailed as exc:
            form.add(exc.errors)
        except Forbidden as exc:
            form.problem = str(exc)
        else:
            return redirect(request, f"{PREFIX}/tasks/{task.id}", f"Saved “{updated.name}”.")
    return _form_page(request, form, task, status=422)


def _execution_link(execution: Execution) -> tuple[str, str]:
    return f"{PREFIX}/executions/{execution.id}", "Open the execution"


async def task_action(request: web.Request) -> web.Response:
    """Run now, pause, resume or delete; the outcome comes back as a flash message."""
    if refused := refuse_read_only(request, f"{PREFIX}/tasks/{request.match_info['id']}"):
        return refused
    ctx, user = dashboard(request), actor(request)
    task_id, action = request.match_info["id"], request.match_info["action"]
    here = f"{PREFIX}/tasks/{task_id}"
    try:
        if action == "run":
            execution = await ctx.tasks.run_now(user, task_id)
            return redirect(
                request,
                here,
                f"Queued a run now (execution {short_id(execution.id)}).",
                link=_execution_link(execution),
            )
        if action == "pause":
            task = await ctx.tasks.pause(user, task_id)
            return redirect(request, here, f"Paused “{task.name}”.")
        if action == "resume":
            task = await ctx.tasks.resume(user, task_id)
            return redirect(request, here, f"Resumed “{task.name}”.")
        if action == "delete":
            task = await ctx.tasks.get(user, task_id)
            await ctx.tasks.delete(user, task_id)
            return redirect(request, f"{PREFIX}/tasks", f"Deleted “{task.name}”.")
    except (Conflict, Forbidden) as exc:
        return redirect(request, here, str(exc).capitalize() + ".", error=True)
    except ValidationFailed as exc:
        # An on-demand task may have no payload of its own that its handler accepts.
        problems = "; ".join(f"{e.field} {e.message}" for e in exc.errors)
        message = f"Not queued: {problems}. Use “Run with payload…” to give it one."
        return redirect(request, here, message, error=True)
    raise web.HTTPNotFound()


def _run_page(request: web.Request, task: Task, form: Form, status: int = 200) -> web.Response:
    return render(
        request,
        "task_run.html",
        {"task": task, "form": form, "labels": RUN_LABELS},
        status=status,
        section="tasks",
    )


async def run_task_page(request: web.Request) -> web.Response:
    if refused := refuse_read_only(request, f"{PREFIX}/tasks/{request.match_info['id']}"):
        return refused
    task = await dashboard(request).tasks.get(actor(request), request.match_info["id"])
    return _run_page(request, task, run_form_of_task(task))


async def run_task(request: web.Request) -> web.Response:
    """Queue one run with the payload, priority and time given; back to the task with a
    link to the execution, or the form again with what was typed and why it was refused."""
    if refused := refuse_read_only(request, f"{PREFIX}/tasks/{request.match_info['id']}"):
        return refused
    ctx, user = dashboard(request), actor(request)
    task = await ctx.tasks.get(user, request.match_info["id"])
    form = read_run_form(await request.post())
    spec = to_run_spec(form, task.timezone)
    if spec is not None:
        try:
            (execution,) = await ctx.tasks.run(user, task.id, [spec], name_items=False)
        except ValidationFailed as exc:
            form.add(exc.errors)
        except (Conflict, Forbidden) as exc:
            form.problem = str(exc).capitalize() + "."
        else:
            later = spec.run_at is not None or spec.delay_ms is not None
            due = f" due {when(execution.run_at)}" if later else ""
            return redirect(
                request,
                f"{PREFIX}/tasks/{task.id}",
                f"Queued a run{due} (execution {short_id(execution.id)}).",
                link=_execution_link(execution),
            )
    return _run_page(request, task, form, status=422)


def _preview(expression: str, timezone: str) -> dict[str, Any]:
    try:
        spec = schedule.parse_cron(expression)
    except schedule.CronError as exc:
        return {"ok": False, "field": "cronExpression", "error": str(exc)}
    try:
        tz = schedule.validate_timezone(timezone or "UTC")
    except schedule.TimezoneError as exc:
        return {"ok": False, "field": "timezone", "error": str(exc)}
    runs = schedule.next_runs(spec, tz, utcnow(), PREVIEW_RUNS)
    return {
        "ok": True,
        "timezone": tz.key,
        "runs": [
            {"utc": r.isoformat(), "local": r.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S %Z")}
            for r in runs
        ],
    }


async def cron_preview(request: web.Request) -> web.Response:
    """The next runs of a cron expression as typed in the form, or why it is invalid."""
    expression = request.query.get("cron", "")[: schedule.MAX_CRON_LENGTH + 1]
    timezone = request.query.get("timezone", "UTC")[:64]
    result = await asyncio.to_thread(_preview, expression, timezone)
    return web.json_response(result)
