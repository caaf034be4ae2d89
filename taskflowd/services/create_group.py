"""Group commit of task creates: the creates that arrive while one transaction writes
tasks are written together in the next one.

Each create without an Idempotency-Key is one small transaction whose audit append holds
the audit chain's head row through its COMMIT, so on PostgreSQL concurrent creates ran one
after another, each waiting for the commit's flush before the next could link its event.
Written as a group, they share the transaction, its commit and its round trips; each
request is still answered only once its own task, first job, audit event and outbox
notice are committed. A create arriving when nothing is being written starts a
transaction at once: a lone request waits for nobody.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from taskflowd.audit.model import AuditEvent
from taskflowd.domain.entities import Execution, Task
from taskflowd.store.errors import StoreUnavailable

MAX_GROUP = 64
"""The most creates written in one transaction."""


@dataclass(slots=True)
class Create:
    """One create waiting for its transaction: the task, its first job and its event."""

    task: Task
    first: Execution | None
    event: AuditEvent
    done: asyncio.Future[None]


Write = Callable[[Sequence[Create]], Awaitable[None]]
"""Writes creates in one transaction (and tells the queue of their work once committed);
raises when nothing of them was committed."""


class CreateGroup:
    """Creates queued for `write`, one transaction per group, one group at a time."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._queued: list[Create] = []
        self._writer: asyncio.Task[None] | None = None

    async def create(self, task: Task, first: Execution | None, event: AuditEvent) -> None:
        """Return once `task` is committed with the group it joined; raise what its write
        raised. A cancelled caller's task is still written with its group."""
        done = asyncio.get_running_loop().create_future()
        self._queued.append(Create(task, first, event, done))
        if self._writer is None:
            # In a context of its own: it writes for many requests, not for this one
            # (its logs must not carry this request's id, nor its audit origin).
            self._writer = asyncio.create_task(
                self._drain(), name="taskflowd-create-group", context=contextvars.Context()
            )
        await done

    async def _drain(self) -> None:
        try:
            while self._queued:
                group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
                await self._write_group(group)
        finally:
            self._writer = None
            for left in self._queued:  # only when cancelled (the loop is closing)
                left.done.cancel()
            self._queued = []

    async def _write_group(self, group: list[Create]) -> None:
        try:
            await self._write(group)
        except asyncio.CancelledError:
            for create in group:
                create.done.cancel()
            raise
        except Exception as exc:
            if len(group) == 1 or isinstance(exc, StoreUnavailable):
                for create in group:
                    _settle(create, exc)
                return
            # One create's row may be what failed (its org deleted meanwhile): each is
            # written alone again, so the others succeed and each gets its own error.
            for create in group:
                try:
                    await self._write([create])
                except Exception as alone:
                    _settle(create, alone)
                else:
                    _settle(create, None)
            return
        for create in group:
            _settle(create, None)


def _settle(create: Create, error: Exception | None) -> None:
    if create.done.done():
        return
    if error is None:
        create.done.set_result(None)
    else:
        create.done.set_exception(error)
