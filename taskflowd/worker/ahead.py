"""The claim-ahead buffer: jobs this worker claimed before a slot was free for them.

A freed slot starts the next buffered job at once, with no round trip to the store, and
the buffer is refilled in batches. A buffered job is claimed like a running one (status
PROCESSING, a fencing token, a lease the lease loop renews), so per-task limits count it
and a crash loses nothing: the reaper queues it again when its lease runs out. A buffered
job whose lease may have run out is never started; at shutdown the rest is handed back.
A job is held for at most about a third of a lease: one that waited that long behind slow
jobs is handed back, so an idle node can take it rather than it waiting for this one.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from taskflowd.domain.entities import Execution

log = logging.getLogger("taskflowd.worker")


def _order(job: Execution) -> tuple[int, datetime, str]:
    """The claim order: highest priority first, then earliest due."""
    return (-job.priority, job.run_at, job.id)


@dataclass(slots=True)
class _Held:
    job: Execution
    deadline: float
    """Monotonic time until which the lease surely holds (it may hold longer)."""
    since: float
    """Monotonic time of the claim."""
    key: tuple[int, datetime, str] = field(init=False)

    def __post_init__(self) -> None:
        self.key = _order(self.job)


class ClaimAhead:
    """Buffered jobs in claim order. A job is started only while more than half of its
    lease is known to remain, which renewals every third of a lease keep true."""

    def __init__(self, lease_s: float) -> None:
        self._lease_s = lease_s
        self._held: list[_Held] = []
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._held)

    def add(self, jobs: Iterable[Execution], claimed_at: float) -> None:
        """Buffer newly claimed jobs; a job claimed again replaces its older claim."""
        for job in jobs:
            self.discard(job.id)
            held = _Held(job, claimed_at + self._lease_s, claimed_at)
            bisect.insort(self._held, held, key=lambda h: h.key)
            self._ids.add(job.id)

    def pop(self) -> Execution | None:
        """The next job to start, or None. Jobs whose lease may be running out are dropped
        (not started: another node may get them once the reaper queues them again)."""
        now = time.monotonic()
        while self._held:
            held = self._held.pop(0)
            self._ids.discard(held.job.id)
            if held.deadline - now > self._lease_s / 2:
                return held.job
            log.warning("buffered job %s not started: its lease was not renewed", held.job.id)
        return None

    def discard(self, execution_id: str) -> Execution | None:
        if execution_id not in self._ids:
            return None
        self._ids.discard(execution_id)
        for i, held in enumerate(self._held):
            if held.job.id == execution_id:
                del self._held[i]
                return held.job
        return None

    def take_held_since(self, before: float) -> list[Execution]:
        """Remove and return the jobs claimed before monotonic time `before`."""
        old = [h.job for h in self._held if h.since < before]
        if old:
            self._held = [h for h in self._held if h.since >= before]
            self._ids.difference_update(job.id for job in old)
        return old

    def claims(self) -> list[tuple[str, int]]:
        """(execution id, fence) of every buffered job, for lease renewal."""
        return [(h.job.id, h.job.fence) for h in self._held]

    def renewed(self, claims: Iterable[tuple[str, int]], at: float) -> None:
        """Leases of `claims` were extended at monotonic time `at` (or later)."""
        renewed = set(claims)
        for held in self._held:
            if (held.job.id, held.job.fence) in renewed:
                held.deadline = at + self._lease_s

    def take_all(self) -> list[Execution]:
        """Empty the buffer (shutdown): its jobs are to be handed back."""
        jobs = [h.job for h in self._held]
        self._held.clear()
        self._ids.clear()
        return jobs
