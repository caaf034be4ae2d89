"""The quotas in force per org: the configured defaults under each org's overrides.

Quotas are read on hot paths (every task create, every API request with an org limit),
so each node keeps an org's quotas for `ttl_s`. A site admin's override publishes a
`principal` event naming the org (bridged to every node), on which each book forgets it;
the TTL bounds what a lost event can cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from taskflowd.domain.orgs import QuotaExceeded, Quotas
from taskflowd.store.base import Store


class QuotaBook:
    def __init__(
        self,
        store: Store,
        defaults: Quotas,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._store = store
        self.defaults = defaults
        self._ttl_s = ttl_s
        self._clock = clock
        self._max = max_entries
        self._cache: dict[str, tuple[float, Quotas]] = {}

    async def of(self, org_id: str) -> Quotas:
        """The quotas in force in `org_id` (the defaults for an unknown org)."""
        now = self._clock()
        cached = self._cache.get(org_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        org = await self._store.get_org(org_id)
        quotas = self.defaults if org is None else org.quotas.over(self.defaults)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[org_id] = (now, quotas)
        return quotas

    def on_event(self, data: dict[str, Any]) -> None:
        """Forget the org a `principal` event names (its quotas changed)."""
        org_id = data.get("orgId")
        if isinstance(org_id, str):
            self._cache.pop(org_id, None)

    async def check_tasks(self, org_id: str, adding: int) -> None:
        """Raise QuotaExceeded when `adding` more tasks would pass the org's max_tasks."""
        limit = (await self.of(org_id)).max_tasks or 0
        if limit and await self._store.count_tasks(org_id) + adding > limit:
            raise QuotaExceeded("max_tasks", limit)

    async def check_workflows(self, org_id: str, adding: int) -> None:
        """Raise QuotaExceeded when `adding` more workflows would pass max_workflows."""
        limit = (await self.of(org_id)).max_workflows or 0
        if limit and await self._store.count_workflows(org_id) + adding > limit:
            raise QuotaExceeded("max_workflows", limit)
