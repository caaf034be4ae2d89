"""Task creates written in groups: creates that come while one transaction writes go in
the next one together, and a group that fails leaves each create with its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from taskflowd.logs import request_id_var
from taskflowd.services.create_group import Create, CreateGroup
from taskflowd.store.errors import StoreError, StoreUnavailable


class Writes:
    """A transaction writer that records each group and fails as told."""

    def __init__(self, bad: str | None = None, down: bool = False) -> None:
        self.groups: list[list[Any]] = []
        self.bad, self.down = bad, down
        self.release = asyncio.Event()

    async def __call__(self, group: Sequence[Create]) -> None:
        tasks = [create.task for create in group]
        self.groups.append(tasks)
        await self.release.wait()
        if self.down:
            raise StoreUnavailable("postgresql unreachable")
        if self.bad in tasks:
            raise StoreError(f"{self.bad} refused")


async def create(group: CreateGroup, task: str) -> str:
    await group.create(task, None, None)  # type: ignore[arg-type]
    return task


async def settle(writes: Writes, *calls: asyncio.Task[str]) -> list[Any]:
    writes.release.set()
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_creates_that_come_during_a_write_share_the_next_one() -> None:
    writes = Writes()
    group = CreateGroup(writes)
    first = asyncio.create_task(create(group, "a"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(create(group, t)) for t in "bcd"]
    await asyncio.sleep(0)

    assert await settle(writes, first, *rest) == ["a", "b", "c", "d"]
    assert writes.groups == [["a"], ["b", "c", "d"]]


async def test_a_failed_group_is_written_one_by_one() -> None:
    writes = Writes(bad="c")
    group = CreateGroup(writes)
    calls = [asyncio.create_task(create(group, t)) for t in "abcd"]
    await asyncio.sleep(0)

    outcomes = await settle(writes, *calls)

    assert outcomes[:2] == ["a", "b"] and outcomes[3] == "d"
    assert isinstance(outcomes[2], StoreError) and "c refused" in str(outcomes[2])
    assert writes.groups == [["a", "b", "c", "d"], ["a"], ["b"], ["c"], ["d"]]


async def test_an_unreachable_database_fails_the_group_at_once() -> None:
    writes = Writes(down=True)
    group = CreateGroup(writes)
    calls = [asyncio.create_task(create(group, t)) for t in "abc"]
    await asyncio.sleep(0)

    outcomes = await settle(writes, *calls)

    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert writes.groups == [["a", "b", "c"]]


async def test_a_cancelled_caller_s_task_is_still_written() -> None:
    writes = Writes()
    group = CreateGroup(writes)
    gone = asyncio.create_task(create(group, "a"))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    later = asyncio.create_task(create(group, "b"))

    assert await settle(writes, later) == ["b"]
    assert writes.groups == [["a"], ["b"]]


async def test_a_group_is_written_in_no_one_request_s_context() -> None:
    """The write of a group serves several requests: what it logs carries none's id (it
    carried the first caller's, for that group and every later one)."""
    seen: list[str | None] = []

    async def write(group: Sequence[Create]) -> None:
        seen.append(request_id_var.get())

    group = CreateGroup(write)

    async def create_as(request_id: str, task: str) -> str:
        request_id_var.set(request_id)
        return await create(group, task)

    calls = [asyncio.create_task(create_as(f"req-{t}", t)) for t in "ab"]
    assert await asyncio.gather(*calls) == ["a", "b"]
    assert seen == [None]
