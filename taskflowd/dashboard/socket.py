"""`GET /api/v1/events`: a WebSocket pushing execution changes and statistics.

Browsers authenticate with the dashboard's session cookie, which this endpoint — and no
other under /api/ — accepts, and only from a page of this very origin (the Origin
header is checked, so another site cannot open a socket with the viewer's cookie).
Programs send `Authorization: Bearer <access token>` instead.

Messages (JSON text frames):
- `{"type": "hello", "userId", "role", "scope"}` once;
- `{"type": "executions", "items": [{id, taskId, taskName, status, attempt, durationMs,
  outcome}], "truncated": bool}` — changes coalesced per execution, at most every 250 ms;
- `{"type": "stats", "stats": <GET /api/v1/stats body>, "series": {start, stepS,
  completed, failed}}` every 5 s;
- `{"type": "gap"}` when `?since=` asked for changes older than the server remembers.
Every message carries `at`, the server's time (Unix seconds); a client that reconnects
with `?since=<at of its last message>` is first sent the changes it missed (up to two
minutes' worth), so neither a page's load nor a short outage loses an update.
A socket whose user is deactivated or whose session ended is closed with code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, hdrs, web

from taskflowd.api.problems import ApiError
from taskflowd.api.security import bearer_token
from taskflowd.auth.tokens import InvalidToken
from taskflowd.dashboard.acting import ORG_COOKIE, resolve
from taskflowd.dashboard.context import DASHBOARD_KEY, Dashboard
from taskflowd.dashboard.live import RecentEvents, StatsFeed, TaskDirectory, visible_event
from taskflowd.dashboard.middleware import origin_of
from taskflowd.dashboard.sessions import SESSION_COOKIE
from taskflowd.domain.entities import User
from taskflowd.domain.errors import NotFound
from taskflowd.domain.orgs import Actor
from taskflowd.events import Event
from taskflowd.services.tasks import org_scope

EVENTS_PATH = "/api/v1/events"
FLUSH_S = 0.25
STATS_S = 5.0
MAX_PENDING = 500
HEARTBEAT_S = 25.0
CLOSE_UNAUTHORIZED = 4401

log = logging.getLogger("taskflowd.dashboard.socket")

StillValid = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Live:
    directory: TaskDirectory
    feed: StatsFeed
    recent: RecentEvents


LIVE_KEY = web.AppKey("taskflowd.dashboard.live", Live)


async def _user_of_session(ctx: Dashboard, cookie: str | None) -> User | None:
    session = ctx.sessions.verify(cookie)
    if session is None:
        return None
    try:
        user = await ctx.auth.get_user(session.user_id)
    except NotFound:
        return None
    if not user.is_active or user.token_version != session.token_version:
        return None
    return user


async def _identify(request: web.Request, ctx: Dashboard) -> tuple[User | Actor, StillValid] | None:
    """The caller and a check that its credentials still hold; None when there are none.
    A browser's page acts in the org its `taskflowd_org` cookie chose, as the page does."""
    try:
        token = bearer_token(request)
    except ApiError:
        return None
    if token is not None:
        try:
            user = (await ctx.auth.authenticate(token)).user
        except InvalidToken:
            return None
        version = user.token_version

        async def token_valid() -> bool:
            try:
                current = await ctx.auth.get_user(user.id)
            except NotFound:
                return False
            return current.is_active and current.token_version == version

        return user, token_valid
    if request.headers.get(hdrs.ORIGIN) != origin_of(request):
        return None  # a cookie counts only when this site's own page opened the socket
    cookie = request.cookies.get(SESSION_COOKIE)
    found = await _user_of_session(ctx, cookie)
    if found is None:
        return None

    async def session_valid() -> bool:
        return await _user_of_session(ctx, cookie) is not None

    acting = await resolve(ctx, found, request.cookies.get(ORG_COOKIE))
    return acting.actor, session_valid


async def events_socket(request: web.Request) -> web.StreamResponse:
    ctx, live = request.app[DASHBOARD_KEY], request.app[LIVE_KEY]
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin != origin_of(request):
        allowed = ctx.settings.http.cors_origins
        if origin not in allowed:
            raise ApiError(403, "forbidden", detail="This origin may not open the event stream.")
    identity = await _identify(request, ctx)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
    await ws.prepare(request)
    if identity is None:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"sign in first")
        return ws
    user, still_valid = identity
    client = _Client(ws, user, still_valid, live, _since(request))
    async with ctx.events.subscribe() as queue:
        reader = asyncio.create_task(_drain(ws), name="dashboard.socket.read")
        pump = asyncio.create_task(client.pump(queue), name="dashboard.socket.pump")
        try:
            await asyncio.wait((reader, pump), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, pump):
                task.cancel()
            results = await asyncio.gather(reader, pump, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, ConnectionError):
                    log.error("event stream failed", exc_info=result)
            await ws.close()
    return ws


def _since(request: web.Request) -> float | None:
    """The `since` query parameter: server time (Unix seconds) the page last knew of."""
    try:
        since = float(request.query.get("since", ""))
    except ValueError:
        return None
    return since if math.isfinite(since) and since > 0 else None


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read until the client goes away; what it sends is ignored."""
    async for message in ws:
        if message.type is WSMsgType.ERROR:
            return


class _Client:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        user: User | Actor,
        still_valid: StillValid,
        live: Live,
        since: float | None,
    ) -> None:
        self._since = since
        self._ws = ws
        self._user = user
        self._still_valid = still_valid
        self._live = live
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._truncated = False

    async def _send(self, message: dict[str, Any]) -> None:
        message["at"] = time.time()
        await self._ws.send_str(orjson.dumps(message).decode())

    async def pump(self, queue: asyncio.Queue[Event]) -> None:
        scope = org_scope(self._user)
        await self._send(
            {
                "type": "hello",
                "userId": self._user.id,
                "role": self._user.role.value,
                "scope": "all" if scope is None else "own",
            }
        )
        await self._catch_up()
        loop = asyncio.get_running_loop()
        next_stats = loop.time()
        last_flush = 0.0
        while not self._ws.closed:
            deadline = min(next_stats, last_flush + FLUSH_S) if self._pending else next_stats
            event = await _next(queue, max(0.0, deadline - loop.time()))
            while event is not None:
                await self._accept(event)
                event = None if queue.empty() else queue.get_nowait()
            now = loop.time()
            if self._pending and now >= last_flush + FLUSH_S:
                await self._flush()
                last_flush = now
            if now >= next_stats:
                if not await self._still_valid():
                    await self._ws.close(code=CLOSE_UNAUTHORIZED, message=b"session ended")
                    return
                snapshot = await self._live.feed.snapshot(scope)
                await self._send({"type": "stats", **snapshot})
                next_stats = now + STATS_S

    async def _catch_up(self) -> None:
        """Replay what happened since the page last heard from the server (its rendering
        or its previous connection); say so when that cannot be complete."""
        if self._since is None:
            return
        missed, gap = self._live.recent.since(self._since)
        for event in missed:
            await self._accept(event)
        if self._pending:
            await self._flush()
        if gap:
            await self._send({"type": "gap"})

    async def _accept(self, event: Event) -> None:
        if event.kind != "execution" or not isinstance(event.data.get("taskId"), str):
            return
        info = await self._live.directory.lookup(event.data["taskId"])
        item = visible_event(event, self._user, info)
        if item is None:
            return
        key = str(item["id"])
        self._pending.pop(key, None)
        self._pending[key] = item
        if len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
            self._truncated = True

    async def _flush(self) -> None:
        items = list(self._pending.values())
        self._pending.clear()
        truncated, self._truncated = self._truncated, False
        await self._send({"type": "executions", "items": items, "truncated": truncated})


async def _next(queue: asyncio.Queue[Event], timeout_s: float) -> Event | None:
    if not queue.empty():
        return queue.get_nowait()
    if timeout_s <= 0:
        return None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):  # not wait_for: see background.wait_event
            return await queue.get()
    return None
