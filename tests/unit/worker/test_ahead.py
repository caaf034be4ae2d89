"""The claim-ahead buffer's order and lease rule (see `taskflowd.worker.ahead`)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import timedelta

from taskflowd.domain.entities import Execution, utcnow
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.worker.ahead import ClaimAhead

LEASE_S = 30.0


def job(priority: int = 0, due_s_ago: float = 1.0, fence: int = 1) -> Execution:
    now = utcnow()
    return Execution(
        id=uuid.uuid4().hex,
        task_id="task",
        job_id="job",
        status=ExecutionStatus.PROCESSING,
        scheduled_for=now,
        run_at=now - timedelta(seconds=due_s_ago),
        priority=priority,
        attempts=1,
        handler="echo",
        payload=None,
        max_retries=0,
        backoff_ms=0,
        timeout_ms=None,
        created_at=now,
        updated_at=now,
        fence=fence,
    )


def drain(buffer: ClaimAhead) -> list[Execution]:
    out = []
    while (next_job := buffer.pop()) is not None:
        out.append(next_job)
    return out


def test_a_newly_claimed_urgent_job_starts_before_the_buffered_ones() -> None:
    buffer = ClaimAhead(LEASE_S)
    low_old, low_new = job(0, due_s_ago=5), job(0, due_s_ago=1)
    buffer.add([low_new, low_old], time.monotonic())
    urgent, medium = job(9), job(5, due_s_ago=10)
    buffer.add([medium, urgent], time.monotonic())
    assert drain(buffer) == [urgent, medium, low_old, low_new]


def test_a_job_whose_lease_was_not_renewed_is_never_started() -> None:
    buffer = ClaimAhead(LEASE_S)
    stale, fresh = job(9), job(0)
    long_ago = time.monotonic() - LEASE_S * 0.6
    buffer.add([stale, fresh], long_ago)
    buffer.renewed([(fresh.id, fresh.fence)], time.monotonic())
    assert drain(buffer) == [fresh]


def test_a_renewal_of_an_older_claim_keeps_nothing_alive() -> None:
    buffer = ClaimAhead(LEASE_S)
    reclaimed = job(fence=2)
    buffer.add([reclaimed], time.monotonic() - LEASE_S * 0.6)
    buffer.renewed([(reclaimed.id, 1)], time.monotonic())
    assert drain(buffer) == []


def test_a_job_claimed_again_replaces_its_older_claim_and_shutdown_takes_all() -> None:
    buffer = ClaimAhead(LEASE_S)
    first, other = job(fence=1), job()
    buffer.add([first, other], time.monotonic())
    again = dataclasses.replace(first, fence=2)
    buffer.add([again], time.monotonic())
    assert sorted(buffer.claims()) == sorted([(first.id, 2), (other.id, 1)])
    assert buffer.discard(other.id) is other
    assert buffer.take_all() == [again]
    assert len(buffer) == 0
