"""The `JobQueue` protocol: how executions become deliverable, are claimed and settled.

An execution row in the store is the system of record for a job. A queue makes it
deliverable, hands it to one worker at a time under a lease, and applies outcomes only
when they carry the fencing token of the current claim, so a worker that lost its
lease can never overwrite the outcome of the job's new owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from taskflowd.domain.entities import JSON, Execution, Task
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.store.base import Then
from taskflowd.store.db import Conn
from taskflowd.store.outbox import Outbox


class OutcomeKind(StrEnum):
    COMPLETED = "COMPLETED"
    RETRY = "RETRY"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one attempt. `run_at` is the retry time for RETRY; `handler`,
    `wait_s` (due time to start) and `org_id` are carried for metrics only, as is
    `step_wait_s` (a workflow step's first attempt: the end of its last upstream step to
    its start)."""

    execution_id: str
    task_id: str
    fence: int
    kind: OutcomeKind
    attempt: int
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    result: JSON = None
    error: JSON = None
    run_at: datetime | None = None
    handler: str = ""
    wait_s: float = 0.0
    org_id: str = ""
    step_wait_s: float | None = None


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """What a renewal found: claims this worker lost, and running jobs asked to cancel."""

    lost: frozenset[str]
    cancel_requested: frozenset[str]


@dataclass(frozen=True, slots=True)
class ReapedJob:
    """What the worker reports of a job whose lease expired."""

    task_id: str
    handler: str
    owner_id: str | None
    org_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reaped:
    """Jobs whose lease expired: queued again (`rescued`) or dead-lettered (`dead`)."""

    rescued: list[str]
    dead: list[str]
    jobs: dict[str, ReapedJob] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TickBatch:
    """Executions of cron ticks, and the compare-and-set of the task's next run."""

    task: Task
    expected_next_run_at: datetime
    next_run_at: datetime
    executions: Sequence[Execution]


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """What a final-outcome hook did in the transaction: the executions it queued, which
    the queue makes deliverable after the commit, and what to call once the transaction
    has committed (never when it rolled back), such as publishing events."""

    spawned: Sequence[Execution] = ()
    after_commit: Sequence[Callable[[], None]] = ()


FinalHook = Callable[[Conn, Sequence[str]], Awaitable[HookOutcome]]
"""Called inside the transaction that records that executions ended for good (COMPLETED,
FAILED after their last attempt, CANCELLED) with their ids."""

ReopenHook = Callable[[Conn, str], Awaitable[None]]
"""Called inside the transaction that takes an execution (by id) out of the dead-letter
queue to run again, before it is queued; may raise to refuse (the retry is undone)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The local worker's room for one claim, held for a transaction that adds work
    (`JobQueue.set_reserve`): it counts as the worker's claim in flight until `deliver`
    receives the jobs claimed (none when the transaction claimed nothing or rolled
    back), which the worker then launches as any claim's."""

    owner: str
    limit: int
    lease_s: float
    deliver: Callable[[list[Execution]], None]


class AddClaim(Protocol):
    """The local worker's claim made inside a transaction that adds work
    (`JobQueue.claim_on_add`): one writer transaction and one commit instead of two."""

    async def claim(self, conn: Conn, added: Sequence[Execution]) -> None:
        """Inside the adding transaction, after its inserts: when some of `added` are due
        now, claim for the worker with the same rules as `JobQueue.acquire`, or leave the
        claim to the claim loop when it would wait for row locks (see `Then`)."""

    def ended(self, committed: bool) -> None:
        """The adding transaction ended: hand the jobs claimed to the worker if it
        committed, none otherwise (if a failed COMMIT took effect after all, they run
        again when their leases expire)."""

    @property
    def claimed(self) -> bool:
        """Whether a claim ran in the transaction; when none did, the caller announces
        the work added (`JobQueue.announce`)."""


T = TypeVar("T")


async def claiming(queue: JobQueue, write: Callable[[Then | None], Awaitable[T]]) -> tuple[T, bool]:
    """`write(then)`, a store call adding work in one transaction, with the local
    worker's claim (`JobQueue.claim_on_add`) as its `then` when the worker has room (one
    commit, not two); and whether that claim ran (when it did not, the caller announces
    the work added). The worker gets its jobs once the transaction ends, even if this
    call is cancelled meanwhile: they must not wait for their leases to expire."""
    adding = queue.claim_on_add()
    if adding is None:
        return await write(None), False
    written = asyncio.ensure_future(write(adding.claim))
    written.add_done_callback(lambda done: adding.ended(_succeeded(done)))
    return await asyncio.shield(written), adding.claimed


def _succeeded(done: asyncio.Future[Any]) -> bool:
    return not done.cancelled() and done.exception() is None


class JobQueue(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def set_final_hook(self, hook: FinalHook) -> None:
        """Run `hook` in every transaction that ends executions for good (workflows use it
        to queue the next steps atomically with the end of the last upstream one)."""

    def set_outbox(self, outbox: Outbox) -> None:
        """Write the webhook notices of outcomes (`execution.*`) through `outbox`, in the
        transaction that applies them."""

    def set_reopen_hook(self, hook: ReopenHook) -> None:
        """Run `hook` in every transaction that retries a dead-lettered execution
        (workflows use it to reopen the run that the execution's failure ended)."""

    async def add(self, executions: Sequence[Execution]) -> None:
        """Store new PENDING executions and make them deliverable at their `run_at`."""

    async def announce(self, executions: Sequence[Execution]) -> None:
        """Make executions the store has just inserted (with their task) deliverable."""

    async def reschedule(self, task: Task, run_at: datetime | None) -> int:
        """Copy a changed task's settings (and a new `run_at`, when given) onto its PENDING
        executions; returns how many changed."""

    async def due_tasks(self, horizon: datetime, limit: int) -> list[Task]:
        """Active recurring tasks whose `next_run_at` is at or before `horizon`."""

    async def next_tick_at(self) -> datetime | None:
        """The earliest `next_run_at` of any active recurring task."""

    async def schedule_changed(self) -> None:
        """Tell every scheduler that tasks changed (created, resumed, rescheduled)."""

    async def wait_for_schedule_change(self, timeout_s: float) -> None: ...

    async def add_ticks(self, batch: TickBatch) -> bool:
        """Atomically insert the ticks' executions (each (task, instant) at most once, ever)
        and advance the task's `next_run_at` if it still equals `expected_next_run_at`.
        Returns False, inserting nothing, when another scheduler advanced it first."""

    async def acquire(self, owner: str, limit: int, lease_s: float) -> list[Execution]:
        """Claim up to `limit` due jobs, highest priority first, then earliest due; each
        becomes PROCESSING with `attempts` + 1, a new fencing token and a lease. Jobs of
        tasks at their concurrency or rate limit stay queued, deferred briefly."""

    async def renew(
        self, owner: str, claims: Sequence[tuple[str, int]], lease_s: float
    ) -> LeaseStatus:
        """Extend the leases of (execution id, fence) claims still held."""

    async def settle(self, outcomes: Sequence[Outcome]) -> set[str]:
        """Apply outcomes in one commit; returns the execution ids applied. An outcome
        whose fence is stale, or whose job is no longer PROCESSING, is ignored."""

    async def release(self, claims: Sequence[tuple[str, int]]) -> int:
        """Hand back claimed jobs unfinished (shutdown): queued again at once, the attempt
        not counted."""

    async def reap_expired(self, max_rescues: int) -> Reaped:
        """Requeue jobs whose lease expired (the attempt counts); after `max_rescues`
        rescues a job is dead-lettered instead."""

    async def cancel(self, execution_id: str, org_id: str | None) -> Execution | None:
        """Cancel a queued job at once, or ask its worker to stop a running one. None when
        the execution does not exist (in this org)."""

    async def retry_dead_letter(self, dead_letter_id: str, org_id: str | None) -> Execution | None:
        """Give a dead-lettered execution one more attempt; None when not found."""

    async def depths(self) -> dict[ExecutionStatus, int]:
        """Jobs per status; PENDING, RETRYING and PROCESSING are counted, finished
        statuses are history rather than queue depth and read 0."""

    async def depths_by_org(self) -> dict[str, dict[ExecutionStatus, int]]:
        """Queued and running jobs (PENDING, RETRYING, PROCESSING) per org id, for the
        orgs that have any."""

    async def next_due(self) -> datetime | None:
        """The earliest `run_at` among queued jobs that may be claimed (jobs of paused
        tasks do not count), or None when there is none."""

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when work may have become due (a local or remote wake-up) or after
        `timeout_s`, whichever comes first."""

    def wake(self) -> None:
        """Wake local waiters (e.g. after a job finished and freed a concurrency slot)."""

    def set_reserve(self, reserve: Callable[[], Reservation | None]) -> None:
        """Have `reserve` called for the local worker's room for a claim (None when it has
        no room or a claim in flight) before a transaction that adds work and claims it
        (`claim_on_add`)."""

    def claim_on_add(self) -> AddClaim | None:
        """A claim for the local worker to run inside the next transaction that adds work
        on this node, or None when the worker has no room or this queue cannot claim in
        a store transaction (then the caller announces the work after the commit)."""

    def set_on_due(self, callback: Callable[[], asyncio.Future[Any] | None]) -> None:
        """Call `callback` whenever work due now was added or announced on this node (once
        it is committed and claimable): the local worker starts a claim at once and returns
        it (None when it has no room or a claim is already in flight), instead of claiming
        on its next turn. The adding call waits briefly for that claim before it returns,
        so the claim runs while the event loop is idle, not beside an HTTP response."""
