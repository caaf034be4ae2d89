"""The overview: throughput, successes and failures, queue depth, run times, recent
failures and the nodes of the cluster. The page's script keeps it current over the
event stream; without script it is a correct snapshot."""

from __future__ import annotations

from aiohttp import web

from taskflowd.dashboard.acting import actor
from taskflowd.dashboard.context import dashboard, render
from taskflowd.dashboard.socket import LIVE_KEY
from taskflowd.dashboard.views_runs import task_names
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.store.base import ExecutionFilter

RECENT_FAILURES = 8
DEPTH_STATES = ("PENDING", "RETRYING", "PROCESSING")


async def overview_page(request: web.Request) -> web.Response:
    ctx, user = dashboard(request), actor(request)
    snapshot = await request.config_dict[LIVE_KEY].feed.snapshot(user.scope)
    failures = await ctx.tasks.list_executions(
        user, ExecutionFilter(status=ExecutionStatus.FAILED), RECENT_FAILURES, None
    )
    tasks = await task_names(request, {e.task_id for e in failures.items})
    stats = snapshot["stats"]
    series = snapshot["series"]
    return render(
        request,
        "overview.html",
        {
            "stats": stats,
            "series": series,
            "live": snapshot,
            "depth_states": DEPTH_STATES,
            "last_hour_completed": sum(series["completed"]),
            "last_hour_failed": sum(series["failed"]),
            "failures": failures.items,
            "tasks": tasks,
        },
        section="overview",
    )
