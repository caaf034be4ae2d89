"""Waiting without sleeping blindly: poll a probe until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 15.0
"""Generous: a loaded 2-core CI machine must never fail a correct implementation."""


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    timeout_s: float = DEADLINE_S,
    interval_s: float = 0.05,
) -> T:
    """The first truthy value `probe` returns; fails the test naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)
