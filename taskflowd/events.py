"""In-process event bus: every state change is published once and fanned out to
subscribers (metrics, WebSocket clients, other nodes). A slow subscriber loses its
oldest events rather than slowing the publisher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("taskflowd.events")
Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Event:
    """`origin` is the id of the node that published it when it came from another node
    (through `taskflowd.events_bridge`); None for this node's own events."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None


class EventBus:
    def __init__(self, subscriber_buffer: int = 1000) -> None:
        self._buffer = subscriber_buffer
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._local_subscribers: set[asyncio.Queue[Event]] = set()
        self._listeners: dict[str, list[Listener]] = {}

    def publish(self, kind: str, **data: Any) -> None:
        """Publish one of this node's own events."""
        event = Event(kind, data)
        self._call_listeners(event)
        _fan_out(event, self._subscribers)
        _fan_out(event, self._local_subscribers)

    def deliver(self, event: Event) -> None:
        """Fan out an event another node published (`event.origin` set) to the
        subscribers that want other nodes' events."""
        self._call_listeners(event)
        _fan_out(event, self._subscribers)

    def on(self, kind: str, listener: Listener) -> None:
        """Call `listener(data)` synchronously for every event of `kind`, this node's and
        other nodes'; for cheap reactions that must not lag (cache invalidation)."""
        self._listeners.setdefault(kind, []).append(listener)

    def _call_listeners(self, event: Event) -> None:
        for listener in self._listeners.get(event.kind, ()):
            try:
                listener(event.data)
            except Exception:
                log.exception("a listener of %s events failed", event.kind)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *, remote: bool = True, buffer: int | None = None
    ) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue of the events published from now on; with `remote=False` only this
        node's own. `buffer` (default: the bus's) bounds what a slow reader may lag."""
        queue: asyncio.Queue[Event] = asyncio.Queue(buffer or self._buffer)
        group = self._subscribers if remote else self._local_subscribers
        group.add(queue)
        try:
            yield queue
        finally:
            group.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers) + len(self._local_subscribers)


def _fan_out(event: Event, queues: set[asyncio.Queue[Event]]) -> None:
    for queue in queues:
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(event)
