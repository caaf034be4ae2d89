"""The bench's drains read the events that tell their end without a timer per event when
events are already queued: the CPU a drain reports is the whole process's, and a timer per
event costs about as much as a job (the plain drain read them so, the workflow drain set
one per event and charged it to each step)."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import pytest

from taskflowd import bench_measure
from taskflowd.bench_workflows import _WorkflowBench
from taskflowd.events import Event


def _no_timer(*args: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError("a timer was set for an event already queued")


async def test_queued_events_are_read_without_a_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    events: asyncio.Queue[Event] = asyncio.Queue()
    events.put_nowait(Event("execution", {"id": "a"}))
    monkeypatch.setattr(asyncio, "wait_for", _no_timer)
    assert (await bench_measure.next_event(events)).data == {"id": "a"}


async def test_an_empty_subscription_waits_for_the_next_event() -> None:
    events: asyncio.Queue[Event] = asyncio.Queue()
    waiting = asyncio.ensure_future(bench_measure.next_event(events))
    await asyncio.sleep(0)
    assert not waiting.done()
    events.put_nowait(Event("execution", {"id": "b"}))
    assert (await asyncio.wait_for(waiting, 5)).data == {"id": "b"}


async def test_the_workflow_drain_reads_queued_events_without_a_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: asyncio.Queue[Event] = asyncio.Queue()
    for i in range(3):
        events.put_nowait(Event("execution", {"id": f"step-{i}", "status": "COMPLETED"}))
        events.put_nowait(Event("workflow_run.finished", {"id": f"run-{i}", "status": "SUCCEEDED"}))
    monkeypatch.setattr(asyncio, "wait_for", _no_timer)
    harness = object.__new__(_WorkflowBench)
    await harness._wait_runs({"run-0", "run-1", "run-2"}, events)
    assert events.empty()
