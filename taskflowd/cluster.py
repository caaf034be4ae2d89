"""Cluster membership: each daemon is one row in `nodes`, kept fresh by a heartbeat.

A node registers itself (random id per process start, host, roles, version, start time)
before it takes work, refreshes its heartbeat every `cluster.heartbeat_s`, and deletes
its row on a clean shutdown. A node silent for `cluster.node_ttl_s` counts as dead; a
live node deletes rows silent for twice that, so a dead node stays visible (as not
alive) for a while after it died and then goes away. A heartbeat that cannot be written
(database down) is retried at the next interval; the loop never gives up, and after
such a gap a node forgets no one until it has written for a whole TTL again: the others
were silent because of the outage, not dead.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from taskflowd import __version__
from taskflowd.background import Supervisor
from taskflowd.config import Settings
from taskflowd.domain.entities import Node, utcnow
from taskflowd.domain.errors import TaskflowError
from taskflowd.logs import node_id_var
from taskflowd.store.base import Store

log = logging.getLogger("taskflowd.cluster")

HEARTBEAT_TASK = "cluster.heartbeat"
FORGET_AFTER_TTLS = 2
"""Rows of nodes silent this many `node_ttl_s` are deleted by the live nodes."""


class RoleMissing(TaskflowError):
    """No live node of the cluster runs a role the cluster needs."""

    code = "role_missing"


class Membership:
    """This node's row in the cluster's `nodes` table; see the module docstring."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        node_id: str,
        supervisor: Supervisor,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.roles = settings.roles
        self.heartbeat_s = settings.cluster.heartbeat_s
        self.node_ttl = timedelta(seconds=settings.cluster.node_ttl_s)
        self._supervisor = supervisor
        self._clock = clock
        self._host = socket.gethostname()
        self._started_at: datetime | None = None
        self._writing_since: datetime | None = None
        self._failing = False

    async def start(self) -> None:
        """Register this node (raises StoreError when the database does not answer) and
        start the heartbeat."""
        node_id_var.set(self.node_id)
        self._started_at = self._clock()
        await self.beat()
        self._supervisor.spawn(HEARTBEAT_TASK, self._loop)

    async def stop(self) -> None:
        """Stop the heartbeat and delete this node's row (best effort: a row left behind
        expires like a dead node's)."""
        await self._supervisor.cancel(HEARTBEAT_TASK)
        try:
            await self.store.delete_node(self.node_id)
        except Exception as exc:
            log.warning("could not unregister node %s: %s", self.node_id, exc)

    async def beat(self) -> None:
        """Write this node's heartbeat and forget nodes dead for long."""
        now = self._clock()
        node = Node(self.node_id, self._host, self.roles, __version__, self._started_at or now, now)
        await self.store.upsert_node(node)
        if self._writing_since is None:
            self._writing_since = now
        if now - self._writing_since < self.node_ttl:
            # Until this node has beaten for a whole TTL, others silent that long may
            # have been unable to write (a database outage just ended), not dead.
            return
        forgotten = await self.store.expire_nodes(now - FORGET_AFTER_TTLS * self.node_ttl)
        if forgotten:
            log.info(
                "forgot %d nodes silent for over %s", forgotten, FORGET_AFTER_TTLS * self.node_ttl
            )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._writing_since = None
                if not self._failing:
                    log.warning(
                        "heartbeat failed, retrying every %.1f s: %s", self.heartbeat_s, exc
                    )
                self._failing = True
                continue
            if self._failing:
                log.info("heartbeat written again")
                self._failing = False

    async def live_nodes(self) -> list[Node]:
        """Nodes whose heartbeat is younger than `node_ttl_s`."""
        return await self.store.list_nodes(alive_since=self._clock() - self.node_ttl)

    async def check_scheduler(self) -> None:
        """A readiness probe: passes when a live node has the scheduler role (this one
        counts without asking the database); raises RoleMissing otherwise."""
        if "scheduler" in self.roles:
            return
        if any("scheduler" in node.roles for node in await self.live_nodes()):
            return
        raise RoleMissing(
            "no live node has the scheduler role, so cron ticks are not enqueued; "
            "start a node with --role scheduler"
        )


def shared_redis_url(settings: Settings) -> str | None:
    """The Redis the cluster shares rate limits and events through: `cluster.redis`, else
    the queue's Redis, else none."""
    if settings.cluster.redis:
        return settings.cluster.redis
    return None if settings.queue == "database" else settings.queue
