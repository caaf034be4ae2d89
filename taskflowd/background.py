"""Named, supervised background tasks: a loop that crashes is logged and restarted with
backoff, or, when it is marked critical, stops the daemon loudly. Nothing dies silently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("taskflowd.background")

LoopFn = Callable[[], Awaitable[None]]
_RESET_AFTER_S = 30.0
_RECANCEL_S = 1.0


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` passed; True when it is set.

    Background loops wait with this, never `asyncio.wait_for(event.wait(), …)`: on Python
    3.11 `wait_for` returns normally when a cancellation arrives just as the event fires,
    so the cancelled loop goes round again and whoever stops it waits forever."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()


class Supervisor:
    def __init__(self, on_fatal: Callable[[str, BaseException], None]) -> None:
        self._on_fatal = on_fatal
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def spawn(self, name: str, fn: LoopFn, *, restart: bool = True) -> None:
        """Run `fn` as task `name`; if it raises, restart it (1 s, 2 s … 30 s) or, with
        `restart=False`, report it as fatal. Returning normally ends the task quietly."""
        if name in self._tasks:
            raise RuntimeError(f"background task {name!r} already running")
        self._tasks[name] = asyncio.create_task(self._guard(name, fn, restart), name=name)

    async def _guard(self, name: str, fn: LoopFn, restart: bool) -> None:
        loop = asyncio.get_running_loop()
        delay = 1.0
        while True:
            began = loop.time()
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not restart:
                    log.critical("background task %s crashed", name, exc_info=True)
                    self._on_fatal(name, exc)
                    return
                if loop.time() - began >= _RESET_AFTER_S:
                    delay = 1.0  # a loop that ran well for a while starts its backoff afresh
                log.error(
                    "background task %s crashed; restarting in %.0f s", name, delay, exc_info=True
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def cancel(self, name: str) -> None:
        """Cancel task `name` and wait for its end. A library call that swallows a
        cancellation (one arriving as its own timeout fires, say) would leave the loop
        going round: the task is cancelled again every second until it ends."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        while not (await asyncio.wait({task}, timeout=_RECANCEL_S))[0]:
            log.warning("background task %s is still running after a cancel; again", name)
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def cancel_all(self) -> None:
        for name in list(self._tasks):
            await self.cancel(name)

    def running(self) -> list[str]:
        return [name for name, task in self._tasks.items() if not task.done()]


class Outage:
    """An outage as one loop sees it: logged once when it begins (`begins`, formatted with
    the error) and once when it ends (`ends`), however many failures lie in between, with
    the pause before each retry growing from 0.1 s to `cap_s`."""

    def __init__(
        self, logger: logging.Logger, begins: str, ends: str, *, cap_s: float = 2.0
    ) -> None:
        self._log = logger
        self._begins = begins
        self._ends = ends
        self._cap_s = cap_s
        self.delay = 0.0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; returns how long to wait before the next try."""
        if not self.delay:
            self._log.warning(self._begins, exc)
        self.delay = min(max(self.delay * 2, 0.1), self._cap_s)
        return self.delay

    def succeeded(self) -> None:
        if self.delay:
            self._log.info(self._ends)
        self.delay = 0.0
