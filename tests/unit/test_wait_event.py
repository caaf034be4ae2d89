"""Background loops wait for their wake-up events with `wait_event`: a loop cancelled at
the moment its event fires stops (Python 3.11's `asyncio.wait_for` would swallow that
cancellation and the loop would go round forever, hanging whoever stops it)."""

from __future__ import annotations

import asyncio

from taskflowd.background import Supervisor, wait_event


async def test_a_loop_cancelled_as_its_event_fires_stops() -> None:
    woken = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_event(woken, 10)
            woken.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    woken.set()
    await asyncio.sleep(0)  # with wait_for, its inner waiter is done here, its caller not
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled(), "the cancelled loop kept going"


async def test_it_says_whether_the_event_fired() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5) is True


async def test_a_supervised_loop_that_swallows_a_cancellation_still_stops() -> None:
    """As a library call can: the first cancellation is taken for a timeout."""
    swallowed = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()

    supervisor = Supervisor(lambda name, exc: None)
    supervisor.spawn("stubborn", loop)
    await asyncio.sleep(0)
    await asyncio.wait_for(supervisor.cancel("stubborn"), 5)
    assert swallowed.is_set()
    assert supervisor.running() == []
