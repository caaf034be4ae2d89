"""The handler of `/api/v1/stats` (declared in `taskflowd.api.routes.ops`)."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.acting import current_actor
from taskflowd.api.responses import json_response
from taskflowd.api.routes.ops import OPS_KEY
from taskflowd.api.schemas_ops import stats_out
from taskflowd.services.tasks import org_scope


async def get_stats(request: web.Request) -> web.Response:
    owner = org_scope(await current_actor(request))
    overview = await request.app[OPS_KEY].stats.overview(owner)
    return json_response(stats_out(overview))
