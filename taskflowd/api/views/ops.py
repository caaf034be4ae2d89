"""The handlers of `/ready` and `/api/v1/stats` (declared in `taskflowd.api.routes.ops`)."""

from __future__ import annotations

from aiohttp import hdrs, web

from taskflowd.api.acting import current_actor
from taskflowd.api.responses import json_response
from taskflowd.api.routes.ops import OPS_KEY
from taskflowd.api.schemas_ops import ready_out, stats_out
from taskflowd.services.tasks import org_scope


async def readiness(request: web.Request) -> web.Response:
    report = await request.app[OPS_KEY].readiness.check()
    headers: dict[str, str] = {str(hdrs.CACHE_CONTROL): "no-store"}
    if not report.ready:
        headers[str(hdrs.RETRY_AFTER)] = "5"
    return json_response(ready_out(report), status=200 if report.ready else 503, headers=headers)


async def get_stats(request: web.Request) -> web.Response:
    owner = org_scope(await current_actor(request))
    overview = await request.app[OPS_KEY].stats.overview(owner)
    return json_response(stats_out(overview))
