"""A named lease in the database: at most one node holds it until it expires."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from taskflowd.domain.entities import utcnow
from taskflowd.store.db import Database

_TAKE = (
    "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    "WHERE leases.owner = excluded.owner OR leases.expires_at < $4"
)


class Lease:
    """`acquire()` takes or renews the lease `name` for `owner`; another owner gets it
    only after it expires (its holder died or stopped renewing)."""

    def __init__(
        self,
        db: Database,
        name: str,
        owner: str,
        ttl_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self.name = name
        self.owner = owner
        self._ttl = timedelta(seconds=ttl_s)
        self._clock = clock
        self._renewed: datetime | None = None

    async def acquire(self) -> bool:
        """Take or renew the lease; True when this owner holds it now."""
        now = self._clock()
        held = await self._db.execute(_TAKE, self.name, self.owner, now + self._ttl, now) > 0
        self._renewed = now if held else None
        return held

    async def keep(self) -> bool:
        """Renew the lease when a third of it has passed; True while it is held."""
        if self._renewed is not None and self._clock() - self._renewed < self._ttl / 3:
            return True
        return await self.acquire()

    async def release(self) -> None:
        self._renewed = None
        await self._db.execute(
            "DELETE FROM leases WHERE name = $1 AND owner = $2", self.name, self.owner
        )

    async def holder(self) -> str | None:
        """The owner of an unexpired lease, if any."""
        row = await self._db.fetchrow(
            "SELECT owner FROM leases WHERE name = $1 AND expires_at >= $2",
            self.name,
            self._clock(),
        )
        return None if row is None else str(row["owner"])
