"""Live data for open pages: statistics snapshots and execution events, per viewer.

`StatsFeed` computes the overview's numbers (statistics + per-minute series) at most once
per scope and interval, however many pages ask. `TaskDirectory` answers "whose task is
this, and what is it called" for events, from a small cache in front of the store, so
a USER only ever hears about executions of its own tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskflowd.dashboard.series import ThroughputSeries
from taskflowd.domain.entities import User
from taskflowd.domain.orgs import Actor
from taskflowd.events import Event, EventBus
from taskflowd.services.stats import StatsService
from taskflowd.services.tasks import org_scope
from taskflowd.store.base import Store

STATS_TTL_S = 2.0
REPLAY_WINDOW_S = 120.0
REPLAY_MAX_EVENTS = 5000
TASK_TTL_S = 30.0
MAX_TASKS = 4096
_EVENT_FIELDS = ("id", "taskId", "status", "attempt", "durationMs", "outcome")


@dataclass(frozen=True, slots=True)
class TaskInfo:
    org_id: str
    name: str


class TaskDirectory:
    """Owner and name of tasks by id: LRU, bounded, entries trusted for `ttl_s`."""

    def __init__(
        self,
        store: Store,
        max_entries: int = MAX_TASKS,
        ttl_s: float = TASK_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, TaskInfo | None]] = OrderedDict()

    async def lookup(self, task_id: str) -> TaskInfo | None:
        """None for a task that does not exist (any more)."""
        now = self._clock()
        cached = self._entries.get(task_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            self._entries.move_to_end(task_id)
            return cached[1]
        task = await self._store.get_task(task_id)
        info = TaskInfo(task.org_id, task.name) if task is not None else None
        self._entries[task_id] = (now, info)
        self._entries.move_to_end(task_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return info


def visible_event(event: Event, user: User | Actor, info: TaskInfo | None) -> dict[str, Any] | None:
    """The event as the viewer may see it, or None when it is not theirs to see."""
    if event.kind != "execution":
        return None
    org = event.data.get("orgId") or (info.org_id if info else None)
    scope = org_scope(user)
    if scope is not None and org != scope:
        return None
    item = {name: event.data.get(name) for name in _EVENT_FIELDS}
    item["taskName"] = info.name if info else None
    return item


class StatsFeed:
    """Statistics snapshots as JSON for one scope (None: everything), shared for `ttl_s`."""

    def __init__(
        self,
        stats: StatsService,
        series: ThroughputSeries,
        ttl_s: float = STATS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats = stats
        self._series = series
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str | None, tuple[float, dict[str, Any]]] = {}
        self._locks: dict[str | None, asyncio.Lock] = {}

    async def snapshot(self, owner_id: str | None) -> dict[str, Any]:
        lock = self._locks.setdefault(owner_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(owner_id)
            if cached is not None and self._clock() - cached[0] < self._ttl_s:
                return cached[1]
            overview = await self._stats.overview(owner_id)
            series = await self._series.per_minute(owner_id)
            # The API's schemas (and pydantic) load when first needed, not to start.
            from taskflowd.api.schemas_ops import stats_out

            data = {
                "stats": stats_out(overview).model_dump(mode="json", by_alias=True),
                "series": series.as_json(),
            }
            self._forget_stale()
            self._cache[owner_id] = (self._clock(), data)
            return data

    def _forget_stale(self) -> None:
        now = self._clock()
        for key in [k for k, (at, _) in self._cache.items() if now - at >= self._ttl_s]:
            del self._cache[key]
            lock = self._locks.get(key)
            if lock is not None and not lock.locked():
                del self._locks[key]


class RecentEvents:
    """The execution events of the last `window_s` seconds (at most `max_events`), so a
    page can catch up with what happened between its rendering (or a lost connection)
    and the moment its event stream opened."""

    def __init__(
        self,
        events: EventBus,
        window_s: float = REPLAY_WINDOW_S,
        max_events: int = REPLAY_MAX_EVENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._events = events
        self._window_s = window_s
        self._max = max_events
        self._clock = clock
        self._recent: deque[tuple[float, Event]] = deque()
        self._horizon = clock()
        """History before this instant may be incomplete (not started yet, or dropped)."""

    async def run(self) -> None:
        """Record events until cancelled (a supervised background task)."""
        async with self._events.subscribe() as queue:
            self._horizon = self._clock()
            while True:
                event = await queue.get()
                if event.kind == "execution":
                    self.add(event)

    def add(self, event: Event) -> None:
        now = self._clock()
        self._recent.append((now, event))
        while self._recent and (
            len(self._recent) > self._max or self._recent[0][0] < now - self._window_s
        ):
            self._horizon = self._recent.popleft()[0]

    def since(self, at: float) -> tuple[list[Event], bool]:
        """Events recorded after `at`, oldest first, and whether some may be missing."""
        found = [event for t, event in self._recent if t > at]
        return found, at < self._horizon
