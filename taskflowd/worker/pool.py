"""The worker pool: claims due jobs in batches (a few ahead of its free slots, see
`taskflowd.worker.ahead`), runs their handlers under a timeout, renews leases, and reports
outcomes in group commits.

Delivery is at-least-once: an outcome is durable only after its batch commits, and a job
whose outcome never committed (crash, lost lease) runs again after its lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import orjson

from taskflowd.background import Outage, Supervisor
from taskflowd.config import WorkerSettings
from taskflowd.domain.entities import JSON, Execution, utcnow
from taskflowd.domain.jobs import is_step_job
from taskflowd.domain.retry import RetryPolicy
from taskflowd.events import EventBus
from taskflowd.handlers.base import JobContext, JobError, load_models
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.logs import execution_id_var, request_id_var, task_id_var
from taskflowd.queue.base import JobQueue, Outcome, OutcomeKind, Reaped, Reservation
from taskflowd.store.errors import StoreError
from taskflowd.worker.ahead import ClaimAhead

log = logging.getLogger("taskflowd.worker")
_FINAL_FLUSH_S = 15.0
_OUTAGE_RETRY_CAP_S = 0.5
_HELD_BACK_PAUSE_S = 0.05
"""The least a claim loop rests when a claim left work that is due already: jobs of an org
at its cap of running jobs stay due until one of its jobs ends (a local one wakes the
loop sooner), and claiming them again at once would keep a core busy meanwhile."""


class _Stop(Enum):
    CANCELLED = "cancelled by request"
    LEASE_LOST = "lease lost"
    HANDBACK = "handed back at shutdown"


@dataclass(slots=True)
class _Running:
    execution: Execution
    task: asyncio.Task[None]
    stop: _Stop | None = None


def _outage(what: str) -> Outage:
    """A worker loop's view of a store outage: retried every 0.5 s at most, so every loop
    resumes within a second of the store's return."""
    return Outage(
        log,
        f"{what}: the store is unavailable (%s); retrying",
        f"{what}: the store answers again",
        cap_s=_OUTAGE_RETRY_CAP_S,
    )


def _error(kind: str, message: str) -> dict[str, str]:
    return {"type": kind, "message": message[:4000]}


class WorkerPool:
    def __init__(
        self,
        queue: JobQueue,
        handlers: HandlerRegistry,
        settings: WorkerSettings,
        node_id: str,
        events: EventBus,
        supervisor: Supervisor,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.settings = settings
        self.node_id = node_id
        self.events = events
        self._supervisor = supervisor
        self._running: dict[str, _Running] = {}
        self._pending: list[Outcome] = []
        self._settling: list[Outcome] = []
        self._flush_needed = asyncio.Event()
        self._flushed = asyncio.Condition()
        self._slot_freed = asyncio.Event()
        self._ahead = ClaimAhead(settings.lease_s)
        # Jobs claimed beyond the free slots, and the least room worth a claim: with
        # concurrency 50, up to 25 wait in the buffer and claims take 13 or more at once.
        self._ahead_size = min(settings.batch_size, max(1, settings.concurrency // 2))
        self._claim_min = max(1, self._ahead_size // 2)
        self._claiming = False
        self._claim: asyncio.Future[list[Execution]] | None = None
        """The claim in flight: started by the claim loop or by `_claim_now`, or reserved
        for a transaction that adds work (`_reserve`)."""
        self._claim_want = 0
        self._claim_full = False
        """Whether the last claim came back with all it asked for (more may be due)."""
        self._ended = 0
        """Jobs that ended running here so far."""
        self._ended_at_claim = 0
        self._ending_per_claim = 0
        """Jobs that ended while the last claim was in flight: as many are expected to end
        while the next one is (see `_room`)."""

    @property
    def active(self) -> int:
        return len(self._running)

    def backlogged(self) -> bool:
        """Whether work due now waits for this worker: its last claim came back full, or
        claimed jobs wait in its buffer for a slot. Background work on the node (the
        pruner) yields more of the database meanwhile."""
        return self._claiming and (self._claim_full or len(self._ahead) > 0)

    async def start(self) -> None:
        self._claiming = True
        self.queue.set_on_due(self._claim_now)
        self.queue.set_reserve(self._reserve)
        self._supervisor.spawn("worker.claim", self._claim_loop)
        self._supervisor.spawn("worker.flush", self._flush_loop)
        self._supervisor.spawn("worker.leases", self._lease_loop)
        self._supervisor.spawn("worker.reaper", self._reap_loop)

    async def stop(self) -> None:
        """Stop claiming, let running jobs finish within the grace period, hand back the
        rest, and commit every outcome before returning."""
        self._claiming = False
        await self._supervisor.cancel("worker.claim")
        await self._hand_back_claim_in_flight()
        await self._hand_back_buffered()
        running = [r.task for r in self._running.values()]
        if running:
            log.info(
                "waiting up to %.0f s for %d running jobs",
                self.settings.shutdown_grace_s,
                len(running),
            )
            await asyncio.wait(running, timeout=self.settings.shutdown_grace_s)
        leftovers = list(self._running.values())
        for entry in leftovers:
            entry.stop = _Stop.HANDBACK
            entry.task.cancel()
        if leftovers:
            await asyncio.gather(*(e.task for e in leftovers), return_exceptions=True)
            released = await self.queue.release(
                [(e.execution.id, e.execution.fence) for e in leftovers]
            )
            log.info("handed back %d unfinished jobs", released)
        await self._supervisor.cancel("worker.leases")
        await self._supervisor.cancel("worker.reaper")
        await self._supervisor.cancel("worker.flush")
        try:
            async with asyncio.timeout(_FINAL_FLUSH_S):
                await self._flush()
        except TimeoutError:
            # Their leases expire and other nodes (or the next start) run them again.
            log.error("could not record %d outcomes before exiting", len(self._pending))

    # --- claiming --------------------------------------------------------------
    async def _claim_loop(self) -> None:
        outage = _outage("claiming jobs")
        while self._claiming:
            claim = self._claim or self._begin_claim()
            if claim is None:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            want = self._claim_want
            # Shielded: stop() must not cancel a claim between its commit and the launch
            # of its jobs, which would strand them under leases nobody renews.
            try:
                jobs = await asyncio.shield(claim)
            except StoreError as exc:
                self._claim_done(claim)
                await asyncio.sleep(outage.failed(exc))
                continue
            except Exception:
                self._claim_done(claim)
                raise
            self._claim_done(claim)
            outage.succeeded()
            self._claim_full = len(jobs) >= want
            if len(jobs) < want:
                try:
                    idle_s = await self._idle_timeout()
                except StoreError as exc:
                    await asyncio.sleep(outage.failed(exc))
                    continue
                await self.queue.wait_for_work(idle_s)

    def _room(self) -> int:
        """How many more jobs a claim may take: free slots and free room in the buffer, and
        the room that the jobs expected to end before the claim commits leave. Short jobs
        end within a claim's round trips: room counted only as the claim starts would
        leave slots empty while it is in flight, and claims would alternate between a
        full batch and the few slots that freed meanwhile. A wrong guess is corrected by
        the next claim, and a job held too long is handed back (`_hand_back_held_since`)."""
        held = self.active + len(self._ahead)
        ending = min(self._ending_per_claim, held)
        return self.settings.concurrency + self._ahead_size - held + ending

    def _begin_claim(self) -> asyncio.Future[list[Execution]] | None:
        """Start a claim for the free room, or None when too little is free. Its jobs are
        launched (or buffered) the moment it commits, whoever waits for it."""
        want = self._want()
        if want is None:
            return None
        claim = asyncio.ensure_future(self.queue.acquire(self.node_id, want, self.settings.lease_s))
        self._track(claim)
        return claim

    def _want(self) -> int | None:
        """How many jobs a claim now takes (None when too little room is free)."""
        room = self._room()
        if room < self._claim_min:
            return None
        self._claim_want = min(room, self.settings.batch_size)
        self._ended_at_claim = self._ended
        return self._claim_want

    def _track(self, claim: asyncio.Future[list[Execution]]) -> None:
        """Make `claim` the claim in flight, whose jobs are launched when it ends."""
        claimed_at = time.monotonic()
        claim.add_done_callback(lambda done: self._claimed(done, claimed_at))
        self._claim = claim

    def _reserve(self) -> Reservation | None:
        """Room for a claim that a transaction adding work makes (see `Reservation`):
        the claim in flight until that transaction ends, unless a claim is in flight."""
        if not self._claiming or self._claim is not None:
            return None
        want = self._want()
        if want is None:
            return None
        claim: asyncio.Future[list[Execution]] = asyncio.get_running_loop().create_future()
        self._claim = claim
        claimed_at = time.monotonic()

        def deliver(jobs: list[Execution]) -> None:
            # No longer in flight at once: work announced right after may start a claim.
            # Once stop() began, it stays the claim in flight: stop() hands its jobs back.
            if self._claiming:
                self._claim_done(claim)
            if not claim.done():
                claim.set_result(jobs)
            # Launched now, not a loop turn later from a callback of `claim`: the handler
            # starts before the adding request goes on to render its response.
            self._claimed(claim, claimed_at)

        return Reservation(self.node_id, want, self.settings.lease_s, deliver)

    def _claimed(self, claim: asyncio.Future[list[Execution]], claimed_at: float) -> None:
        """Launch a committed claim's jobs, unless stop() began: then it hands them back."""
        if claim.cancelled() or claim.exception() is not None or not self._claiming:
            return
        self._claim_done(claim)
        self._ending_per_claim = self._ended - self._ended_at_claim
        self._ahead.add(claim.result(), claimed_at)
        self._fill_slots()

    def _claim_done(self, claim: asyncio.Future[list[Execution]]) -> None:
        if self._claim is claim:
            self._claim = None

    def _claim_now(self) -> asyncio.Future[list[Execution]] | None:
        """Work due now was added on this node: claim at once, unless a claim is in flight
        (the claim loop claims again after it). The claim loop takes over the claim."""
        if self._claiming and self._claim is None:
            return self._begin_claim()
        return None

    async def _hand_back_claim_in_flight(self) -> None:
        """Release the jobs of a claim that stop() interrupted before they were launched."""
        claim, self._claim = self._claim, None
        if claim is None:
            return
        try:
            async with asyncio.timeout(_FINAL_FLUSH_S):
                jobs = await claim
        except Exception:
            claim.cancel()
            log.warning("a claim in flight at shutdown failed; its leases will expire")
            return
        if jobs:
            released = await self.queue.release([(j.id, j.fence) for j in jobs])
            log.info("handed back %d jobs claimed as shutdown began", released)

    async def _hand_back_buffered(self) -> None:
        jobs = self._ahead.take_all()
        if not jobs:
            return
        try:
            async with asyncio.timeout(_FINAL_FLUSH_S):
                released = await self.queue.release([(j.id, j.fence) for j in jobs])
        except Exception:
            log.warning("could not hand back %d buffered jobs; their leases will expire", len(jobs))
            return
        log.info("handed back %d buffered jobs", released)

    def _fill_slots(self) -> None:
        """Start buffered jobs while slots are free."""
        while self._claiming and self.active < self.settings.concurrency:
            job = self._ahead.pop()
            if job is None:
                return
            self._launch(job)

    async def _idle_timeout(self) -> float:
        due = await self.queue.next_due()
        if due is None:
            return self.settings.safety_poll_s
        wait = (due - utcnow()).total_seconds()
        if wait <= 0:
            return _HELD_BACK_PAUSE_S
        return min(wait, self.settings.safety_poll_s)

    def _launch(self, job: Execution) -> None:
        # Claimed again while an older claim still runs here (its lease expired during an
        # outage and another node queued it again): only the newest claim may run.
        self._stop_job(job.id, _Stop.LEASE_LOST)
        task = asyncio.create_task(self._run(job), name=f"job:{job.id}")
        self._running[job.id] = _Running(job, task)
        self.events.publish(
            "execution",
            id=job.id,
            taskId=job.task_id,
            status="PROCESSING",
            ownerId=job.owner_id,
            orgId=job.org_id,
        )

    # --- running one job ------------------------------------------------------------
    async def _run(self, job: Execution) -> None:
        request_id_var.set(job.request_id)
        task_id_var.set(job.task_id)
        execution_id_var.set(job.id)
        started_at = utcnow()
        started = time.monotonic()
        try:
            kind, result, error, retry_after = await self._call(job)
        except asyncio.CancelledError:
            entry = self._running.get(job.id)
            if entry is None or entry.execution is not job or entry.stop is not _Stop.CANCELLED:
                self._forget(job)
                raise
            kind, result, error, retry_after = (
                OutcomeKind.CANCELLED,
                None,
                _error("cancelled", "cancelled by request"),
                None,
            )
        outcome = self._outcome(job, kind, result, error, retry_after, started_at, started)
        self._pending.append(outcome)
        self._flush_needed.set()
        self._forget(job)

    def _forget(self, job: Execution) -> None:
        entry = self._running.get(job.id)
        if entry is not None and entry.execution is job:
            del self._running[job.id]
        self._ended += 1
        self._fill_slots()
        # The claim loop waits for room enough for a claim: waking it for every finished
        # job would cost a loop turn per job that finds too little room.
        if self._room() >= self._claim_min:
            self._slot_freed.set()

    async def _call(self, job: Execution) -> tuple[OutcomeKind, JSON, JSON, float | None]:
        """Run the handler; returns (kind, result, error, retry-after hint)."""
        if job.handler not in self.handlers:
            return (
                OutcomeKind.DEAD,
                None,
                _error("unknown_handler", f"no handler named {job.handler!r} on this node"),
                None,
            )
        spec = self.handlers.get(job.handler)
        await load_models(spec)
        ctx = JobContext(job.id, job.task_id, job.attempts, f"{job.id}:{job.attempts}", log)
        try:
            if job.timeout_ms:
                async with asyncio.timeout(job.timeout_ms / 1000):
                    result = await spec.run(job.payload, ctx)
            else:
                result = await spec.run(job.payload, ctx)
            orjson.dumps(result)
        except TimeoutError:
            return (
                OutcomeKind.RETRY,
                None,
                _error("timeout", f"attempt exceeded {job.timeout_ms} ms"),
                None,
            )
        except JobError as exc:
            kind = OutcomeKind.RETRY if exc.retryable else OutcomeKind.DEAD
            return kind, None, _error(exc.error_type, str(exc)), exc.retry_after_s
        except orjson.JSONEncodeError as exc:
            return OutcomeKind.DEAD, None, _error("bad_result", f"result is not JSON: {exc}"), None
        except Exception as exc:
            log.warning("job %s raised %s", job.id, type(exc).__name__, exc_info=True)
            return (
                OutcomeKind.RETRY,
                None,
                _error("exception", f"{type(exc).__name__}: {exc}"),
                None,
            )
        return OutcomeKind.COMPLETED, result, None, None

    def _outcome(
        self,
        job: Execution,
        kind: OutcomeKind,
        result: JSON,
        error: JSON,
        retry_after_s: float | None,
        started_at: datetime,
        started: float,
    ) -> Outcome:
        finished_at = utcnow()
        run_at = None
        if kind is OutcomeKind.RETRY:
            policy = RetryPolicy(job.max_retries, job.backoff_ms, self.settings.backoff_cap_ms)
            if policy.should_retry(job.attempts):
                delay_ms = policy.delay_for(job.attempts, retry_after_s)
                run_at = finished_at + timedelta(milliseconds=delay_ms)
            else:
                kind = OutcomeKind.DEAD
        return Outcome(
            execution_id=job.id,
            task_id=job.task_id,
            fence=job.fence,
            kind=kind,
            attempt=job.attempts,
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=int((time.monotonic() - started) * 1000),
            result=result,
            error=error,
            run_at=run_at,
            handler=job.handler,
            wait_s=max(0.0, (started_at - job.run_at).total_seconds()),
            org_id=job.org_id,
            step_wait_s=_step_wait_s(job, started_at),
        )

    # --- group commit -----------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await self._flush_needed.wait()
            self._flush_needed.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Commit every outcome collected so far in one transaction. On failure they stay
        queued and are retried with backoff; their leases expire meanwhile at worst."""
        outage = _outage("recording outcomes")
        while self._pending:
            batch, self._pending = self._pending, []
            self._settling = batch
            try:
                applied = await self.queue.settle(batch)
            except asyncio.CancelledError:
                self._pending[:0] = batch
                raise
            except Exception as exc:
                self._pending[:0] = batch
                self._settling = []
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            self._settling = []
            for outcome in batch:
                if outcome.execution_id not in applied:
                    log.warning("outcome of %s dropped: its claim is stale", outcome.execution_id)
                    continue
                self.events.publish(
                    "execution",
                    id=outcome.execution_id,
                    taskId=outcome.task_id,
                    status=_STATUS[outcome.kind],
                    outcome=outcome.kind.value,
                    durationMs=outcome.duration_ms,
                    attempt=outcome.attempt,
                    handler=outcome.handler,
                    waitS=outcome.wait_s,
                    orgId=outcome.org_id,
                    stepWaitS=outcome.step_wait_s,
                )

    # --- leases ------------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        interval = self.settings.lease_s / 3
        outage = _outage("renewing leases")
        wait = interval
        while True:
            await asyncio.sleep(wait)
            wait = interval
            await self._hand_back_held_since(time.monotonic() - interval)
            # Finished jobs whose outcome waits for its group commit keep their lease too,
            # or a slow commit could let another node run them again.
            claims = [(r.execution.id, r.execution.fence) for r in self._running.values()]
            claims += [(o.execution_id, o.fence) for o in (*self._pending, *self._settling)]
            buffered = self._ahead.claims()
            claims += buffered
            if not claims:
                continue
            renewing = time.monotonic()
            try:
                status = await self.queue.renew(self.node_id, claims, self.settings.lease_s)
            except StoreError as exc:
                # Retried soon rather than after a whole interval: the leases run out.
                wait = min(outage.failed(exc), interval)
                continue
            outage.succeeded()
            self._ahead.renewed((c for c in buffered if c[0] not in status.lost), renewing)
            for execution_id in status.lost:
                self._ahead.discard(execution_id)
                self._stop_job(execution_id, _Stop.LEASE_LOST)
            for execution_id in status.cancel_requested:
                self._cancel_buffered(execution_id)
                self._stop_job(execution_id, _Stop.CANCELLED)

    async def _hand_back_held_since(self, before: float) -> None:
        """Release buffered jobs claimed before `before`: they waited behind slow jobs
        long enough that another node should have the chance to run them."""
        jobs = self._ahead.take_held_since(before)
        if not jobs:
            return
        try:
            await self.queue.release([(j.id, j.fence) for j in jobs])
        except StoreError as exc:
            log.warning("could not hand back %d waiting jobs: %s", len(jobs), exc)

    def _cancel_buffered(self, execution_id: str) -> None:
        """A buffered job asked to cancel ends without starting."""
        job = self._ahead.discard(execution_id)
        if job is None:
            return
        now, error = utcnow(), _error("cancelled", "cancelled by request")
        outcome = self._outcome(
            job, OutcomeKind.CANCELLED, None, error, None, now, time.monotonic()
        )
        self._pending.append(outcome)
        self._flush_needed.set()
        self._slot_freed.set()

    def _stop_job(self, execution_id: str, reason: _Stop) -> None:
        entry = self._running.get(execution_id)
        if entry is not None and entry.stop is None:
            log.info("stopping job %s: %s", execution_id, reason.value)
            entry.stop = reason
            entry.task.cancel()

    async def _reap_loop(self) -> None:
        interval = max(1.0, self.settings.lease_s / 4)
        outage = _outage("reaping expired leases")
        while True:
            try:
                reaped = await self.queue.reap_expired(self.settings.max_rescues)
            except StoreError as exc:
                # Retried soon rather than after a whole interval: rescues wait for it.
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            if reaped.rescued or reaped.dead:
                log.warning(
                    "rescued %d jobs with expired leases; dead-lettered %d",
                    len(reaped.rescued),
                    len(reaped.dead),
                )
                self._publish_reaped(reaped)
            await asyncio.sleep(interval)

    def _publish_reaped(self, reaped: Reaped) -> None:
        """An expired lease ends an attempt: report it like any other outcome."""
        for ids, kind in ((reaped.rescued, OutcomeKind.RETRY), (reaped.dead, OutcomeKind.DEAD)):
            status = "PENDING" if kind is OutcomeKind.RETRY else _STATUS[kind]
            for execution_id in ids:
                job = reaped.jobs.get(execution_id)
                if job is None:
                    continue
                self.events.publish(
                    "execution",
                    id=execution_id,
                    taskId=job.task_id,
                    status=status,
                    outcome=kind.value,
                    handler=job.handler,
                    ownerId=job.owner_id,
                    orgId=job.org_id,
                )

    async def drained(self) -> None:
        """Wait until no job is running here (for tests and benchmarks)."""
        while self._running or len(self._ahead):
            if not self._running:
                self._fill_slots()
                if not self._running:
                    break
            await asyncio.wait([r.task for r in self._running.values()])
        await self._flush()


_STATUS = {
    OutcomeKind.COMPLETED: "COMPLETED",
    OutcomeKind.RETRY: "RETRYING",
    OutcomeKind.DEAD: "FAILED",
    OutcomeKind.CANCELLED: "CANCELLED",
}


def _step_wait_s(job: Execution, started_at: datetime) -> float | None:
    """A workflow step's wait from the end of its last upstream step (when its execution
    was created, in that same transaction) to its first start; None for other jobs."""
    if job.attempts != 1 or not is_step_job(job.job_id):
        return None
    return max(0.0, (started_at - job.created_at).total_seconds())
