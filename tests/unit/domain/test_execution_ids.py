"""Execution ids: valid version 7 UUIDs that sort, as text, in the order they were made."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from taskflowd.domain.entities import Task
from taskflowd.domain.enums import MisfirePolicy, TaskStatus, TaskType
from taskflowd.domain.ids import TimeOrderedIds
from taskflowd.domain.jobs import new_execution


def _task() -> Task:
    now = datetime.now(UTC)
    return Task(
        id=str(uuid.uuid4()), name="ids", description="", type=TaskType.ON_DEMAND,
        status=TaskStatus.ACTIVE, handler="echo", payload={}, cron_expression=None,
        timezone="UTC", scheduled_at=None, delay_ms=None, priority=0, max_retries=0,
        backoff_ms=0, timeout_ms=None, rate_limit=None, concurrency=None,
        misfire_policy=MisfirePolicy.RUN_ONCE, created_by=str(uuid.uuid4()),
        created_at=now, updated_at=now, org_id=str(uuid.uuid4()),
    )  # fmt: skip


def test_executions_made_in_sequence_sort_in_creation_order() -> None:
    task, due = _task(), datetime.now(UTC)
    ids = [new_execution(task, due, f"job-{i}").id for i in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_an_id_holds_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_execution(_task(), datetime.now(UTC), "job").id
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(made).int >> 80 <= after


def test_ids_still_rise_when_the_clock_stands_still_or_steps_back() -> None:
    readings = iter([1_000, 1_000, 1_000, 999, 500, 1_000, 1_001])
    ids = TimeOrderedIds(lambda: next(readings))
    made = [ids.next() for _ in range(7)]
    assert made == sorted(made)
    assert len(set(made)) == 7
    assert [uuid.UUID(m).int >> 80 for m in made][-1] == 1_001


def test_a_millisecond_full_of_ids_carries_into_the_next() -> None:
    ids = TimeOrderedIds(lambda: 7)
    made = [ids.next() for _ in range(3)]
    ids._tail = (1 << 74) - 1
    later = ids.next()
    assert made == sorted(made) and made[-1] < later
    assert uuid.UUID(later).int >> 80 == 8


def test_a_batch_of_ids_rises_between_the_ids_made_before_and_after_it() -> None:
    ids = TimeOrderedIds(lambda: 7)
    made = [ids.next(), *ids.take(1000), ids.next()]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {uuid.UUID(m).version for m in made} == {7}
