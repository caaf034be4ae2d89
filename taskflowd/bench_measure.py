"""Measures the bench modes share: percentiles, process CPU time, peak memory, and the
reading of the events that tell a drain's end."""

from __future__ import annotations

import asyncio
import resource
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskflowd.events import Event

EVENT_TIMEOUT_S = 120


async def next_event(events: asyncio.Queue[Event]) -> Event:
    """The next event of a drain's subscription; fails when none arrives for 120 s. Events
    already queued are read without a timer: one per event would cost the harness more
    than a job costs the worker, and the CPU a drain reports is the whole process's."""
    if events.empty():
        return await asyncio.wait_for(events.get(), EVENT_TIMEOUT_S)
    return events.get_nowait()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_s() -> float:
    """CPU time of this process (every thread), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
