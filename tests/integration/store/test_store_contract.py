"""The Store contract, run against every backend through the parametrised `store` fixture.

Each test gets a fresh, migrated database (real SQLite, real PostgreSQL); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from taskflowd.domain.entities import DeadLetterJob, Execution, Task, User
from taskflowd.domain.enums import ExecutionStatus, MisfirePolicy, Role, TaskStatus, TaskType
from taskflowd.domain.errors import ValidationFailed
from taskflowd.store import SqlStore, open_store
from taskflowd.store.base import (
    ExecutionFilter,
    IdempotencyClaim,
    IdempotentResponse,
    Page,
    Replay,
    TaskFilter,
)
from taskflowd.store.db import open_database
from taskflowd.store.errors import DuplicateKey, StoreUnavailable
from taskflowd.store.migrate import available, current_version, migrate
from tests.integration.store.factories import (
    insert_dead_letter,
    insert_execution,
    insert_retry,
    make_dead_letter,
    make_execution,
    make_node,
    make_refresh_token,
    make_task,
    make_user,
)

T = TypeVar("T")

T0 = datetime(2024, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def all_pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> list[list[T]]:
    """Follow cursors from the first page to the last; each page's items in order."""
    pages: list[list[T]] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        assert page.items, "a page with a next cursor must not be empty"
        cursor = page.next_cursor
        assert len(pages) < 50, "pagination does not terminate"


def ids(items: list[Any]) -> list[str]:
    return [item.id for item in items]


def org(user: User) -> str:
    """The user's personal org (made with the user)."""
    assert user.default_org_id is not None
    return user.default_org_id


async def new_user(store: SqlStore, **changes: Any) -> User:
    return await store.create_user(make_user(**changes))


async def new_task(
    store: SqlStore, owner: User, first_run: bool = False, **changes: Any
) -> tuple[Task, Execution | None]:
    task = make_task(owner.id, **{"org_id": org(owner), **changes})
    run = make_execution(task) if first_run else None
    await store.create_task(task, run)
    return task, run


# --- lifecycle and migrations --------------------------------------------------


async def test_ping_answers(store: SqlStore) -> None:
    await store.ping()


async def test_stopped_store_is_unavailable(store: SqlStore) -> None:
    await store.stop()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.get_user("anyone")
    with pytest.raises(StoreUnavailable):
        await store.put_setting_if_absent("k", "v")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent-taskflowd-dir/sub/taskflowd.db",
        "postgresql://postgres@127.0.0.1:1/taskflowd",
    ],
    ids=["sqlite-missing-directory", "postgresql-refused"],
)
async def test_unreachable_database_is_unavailable(url: str) -> None:
    store = open_store(url)
    with pytest.raises(StoreUnavailable):
        await store.start()
    await store.stop()


async def test_migrate_again_is_a_no_op(store: SqlStore) -> None:
    files = available(store.db.dialect)
    assert files, "there must be at least one migration"
    assert await migrate(store.db) == []
    assert await current_version(store.db) == max(m.version for m in files)
    recorded = await store.db.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in recorded] == [m.version for m in files]


async def test_migrate_on_a_current_schema_opens_no_transaction(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node restarting on a current schema reads the recorded versions once instead of
    a transaction per migration file (start-up time, issue 12)."""
    opened: list[object] = []
    transaction = store.db.transaction

    def counted() -> Any:
        opened.append(None)
        return transaction()

    monkeypatch.setattr(store.db, "transaction", counted)
    assert await migrate(store.db) == []
    assert opened == []


async def test_two_nodes_migrate_a_fresh_postgresql_database_at_once(pg_url: str) -> None:
    """Nodes started together on a new database: between them each migration is applied
    once, and both start (one failed creating the table of versions, which both had
    found missing)."""
    nodes = [open_database(pg_url), open_database(pg_url)]
    for node in nodes:
        await node.connect()
    try:
        for _ in range(3):
            await nodes[0].execute("DROP SCHEMA public CASCADE")
            await nodes[0].execute("CREATE SCHEMA public")
            first, second = await asyncio.gather(*(migrate(node) for node in nodes))
            applied = sorted(m.version for m in first + second)
            assert applied == [m.version for m in available("postgresql")]
    finally:
        for node in nodes:
            await node.close()


# --- users ---------------------------------------------------------------------


async def test_create_and_get_user(store: SqlStore) -> None:
    made = make_user(email="ada@example.com", role=Role.ADMIN)
    user = await store.create_user(made)
    assert user == dataclasses.replace(made, default_org_id=user.default_org_id)
    assert await store.get_user(user.id) == user
    assert await store.get_user_by_email("ada@example.com") == user


async def test_get_user_by_email_ignores_case_of_the_query(store: SqlStore) -> None:
    user = await new_user(store, email="grace.hopper@example.com")
    assert await store.get_user_by_email("Grace.Hopper@EXAMPLE.com") == user


async def test_unknown_user_is_none(store: SqlStore) -> None:
    assert await store.get_user("no-such-id") is None
    assert await store.get_user_by_email("nobody@example.com") is None


async def test_duplicate_live_email_is_rejected(store: SqlStore) -> None:
    await new_user(store, email="dup@example.com")
    with pytest.raises(DuplicateKey):
        await store.create_user(make_user(email="dup@example.com"))
    assert await store.count_users() == 1


async def test_soft_deleted_user_is_gone_and_its_email_reusable(store: SqlStore) -> None:
    keep = await new_user(store, created_at=at(0))
    gone = await new_user(store, email="gone@example.com", created_at=at(1))
    assert await store.count_users() == 2

    assert await store.delete_user(gone.id, at(10)) is True
    assert await store.delete_user(gone.id, at(11)) is False
    assert await store.get_user(gone.id) is None
    assert await store.get_user_by_email("gone@example.com") is None
    assert ids((await store.list_users(10)).items) == [keep.id]
    assert await store.count_users() == 1

    again = await new_user(store, email="gone@example.com", created_at=at(20))
    assert await store.get_user_by_email("gone@example.com") == again
    assert await store.count_users() == 2


async def test_delete_unknown_user_is_false(store: SqlStore) -> None:
    assert await store.delete_user("no-such-id", at(0)) is False


async def test_update_user_writes_every_mutable_field(store: SqlStore) -> None:
    user = await new_user(store, email="old@example.com", created_at=at(0))
    changed = dataclasses.replace(
        user,
        email="new@example.com",
        password_hash="$2b$04$" + "y" * 53,
        first_name="Grace",
        last_name="Hopper",
        role=Role.ADMIN,
        is_active=False,
        token_version=7,
        updated_at=at(5),
    )
    assert await store.update_user(changed) == changed
    assert await store.get_user(user.id) == changed
    assert await store.get_user_by_email("old@example.com") is None
    assert await store.get_user_by_email("new@example.com") == changed


async def test_update_user_to_a_taken_email_is_rejected(store: SqlStore) -> None:
    await new_user(store, email="taken@example.com")
    user = await new_user(store, email="mine@example.com")
    with pytest.raises(DuplicateKey):
        await store.update_user(dataclasses.replace(user, email="taken@example.com"))
    assert await store.get_user(user.id) == user


async def test_update_gone_user_is_none(store: SqlStore) -> None:
    user = await new_user(store)
    await store.delete_user(user.id, at(1))
    assert await store.update_user(dataclasses.replace(user, first_name="Zombie")) is None
    assert await store.update_user(make_user()) is None


async def test_list_users_pages_newest_first(store: SqlStore) -> None:
    made = [await new_user(store, created_at=at(i)) for i in range(7)]
    pages = await all_pages(lambda cursor: store.list_users(3, cursor))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [u.id for p in pages for u in p] == [u.id for u in reversed(made)]
    assert pages[0][0] == made[-1]


async def test_list_users_has_no_empty_last_page(store: SqlStore) -> None:
    for i in range(6):
        await new_user(store, created_at=at(i))
    pages = await all_pages(lambda cursor: store.list_users(3, cursor))
    assert [len(p) for p in pages] == [3, 3]


async def test_list_users_pages_through_equal_creation_times(store: SqlStore) -> None:
    made = [await new_user(store, created_at=at(0)) for _ in range(5)]
    pages = await all_pages(lambda cursor: store.list_users(2, cursor))
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [u.id for p in pages for u in p]
    assert listed == sorted((u.id for u in made), reverse=True)


async def test_list_users_empty(store: SqlStore) -> None:
    page = await store.list_users(10)
    assert page.items == []
    assert page.next_cursor is None
    assert await store.count_users() == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "",
        "bm90LWEtY3Vyc29y",  # "not-a-cursor"
        "MjAyNC0wMS0wMVQwMDowMDowMHx4",  # naive time "2024-01-01T00:00:00|x"
        "MjAyNC0wMS0wMVQwMDowMDowMCswMDowMHw",  # no id "2024-01-01T00:00:00+00:00|"
        "__--__",
    ],
)
@pytest.mark.parametrize("listing", ["users", "tasks", "executions", "dead_letter"])
async def test_garbage_cursor_is_a_validation_error(
    store: SqlStore, listing: str, cursor: str
) -> None:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "users": lambda: store.list_users(5, cursor),
        "tasks": lambda: store.list_tasks(TaskFilter(), 5, cursor),
        "executions": lambda: store.list_executions(ExecutionFilter(), 5, cursor),
        "dead_letter": lambda: store.list_dead_letter(None, 5, cursor),
    }
    with pytest.raises(ValidationFailed) as caught:
        await calls[listing]()
    assert [e.field for e in caught.value.errors] == ["cursor"]


# --- tasks ---------------------------------------------------------------------


async def test_create_task_without_first_run(store: SqlStore) -> None:
    owner = await new_user(store)
    task = make_task(owner.id)
    assert await store.create_task(task) == task
    assert await store.get_task(task.id) == task
    page = await store.list_executions(ExecutionFilter(task_id=task.id), 10)
    assert page.items == []


async def test_create_task_with_first_run(store: SqlStore) -> None:
    owner = await new_user(store)
    task = make_task(owner.id, type=TaskType.DELAYED, delay_ms=5000, scheduled_at=at(5))
    run = make_execution(task, scheduled_for=at(5), run_at=at(5), request_id="req-1")
    assert await store.create_task(task, run) == task
    assert await store.get_task(task.id) == task
    assert await store.get_execution(run.id) == run
    page = await store.list_executions(ExecutionFilter(task_id=task.id), 10)
    assert page.items == [run]


async def test_create_task_is_atomic_with_its_first_run(store: SqlStore) -> None:
    owner = await new_user(store)
    _, existing = await new_task(store, owner, first_run=True)
    assert existing is not None
    task = make_task(owner.id)
    clashing = dataclasses.replace(make_execution(task), id=existing.id)
    with pytest.raises(DuplicateKey):
        await store.create_task(task, clashing)
    assert await store.get_task(task.id) is None
    assert await store.get_execution(existing.id) == existing


async def test_get_task_filters_by_owner(store: SqlStore) -> None:
    owner = await new_user(store)
    other = await new_user(store)
    task, _ = await new_task(store, owner)
    assert await store.get_task(task.id) == task
    assert await store.get_task(task.id, org(owner)) == task
    assert await store.get_task(task.id, org(other)) is None
    assert await store.get_task("no-such-task") is None


async def test_update_task_writes_every_mutable_field(store: SqlStore) -> None:
    owner = await new_user(store)
    task, _ = await new_task(store, owner, created_at=at(0))
    changed = dataclasses.replace(
        task,
        name="renamed",
        description="new description",
        type=TaskType.RECURRING,
        status=TaskStatus.PAUSED,
        handler="http",
        payload={"url": "https://example.com", "retries": [1, 2]},
        cron_expression="*/5 * * * *",
        timezone="Europe/Paris",
        scheduled_at=at(60),
        delay_ms=250,
        priority=9,
        max_retries=0,
        backoff_ms=50,
        timeout_ms=None,
        rate_limit=10,
        concurrency=2,
        misfire_policy=MisfirePolicy.RUN_ALL,
        updated_at=at(30),
        next_run_at=at(300),
    )
    assert await store.update_task(changed, task.status) == changed
    assert await store.get_task(task.id) == changed


async def test_update_task_is_a_compare_and_set_on_status(store: SqlStore) -> None:
    owner = await new_user(store)
    task, _ = await new_task(store, owner)
    finished = dataclasses.replace(task, status=TaskStatus.COMPLETED, updated_at=at(5))
    assert await store.update_task(finished, task.status) == finished
    stale_edit = dataclasses.replace(task, name="edited", last_run_at=at(99))
    assert await store.update_task(stale_edit, TaskStatus.ACTIVE) is None
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.status, stored.name, stored.last_run_at) == (
        TaskStatus.COMPLETED,
        task.name,
        task.last_run_at,
    )


async def test_update_gone_task_is_none(store: SqlStore) -> None:
    owner = await new_user(store)
    task, _ = await new_task(store, owner)
    assert await store.delete_task(task.id, None, at(1)) is True
    assert await store.update_task(dataclasses.replace(task, name="zombie"), task.status) is None
    assert await store.update_task(make_task(owner.id), TaskStatus.ACTIVE) is None


async def test_delete_task_cancels_only_its_queued_executions(store: SqlStore) -> None:
    owner = await new_user(store)
    task, first = await new_task(store, owner, first_run=True, created_at=at(0))
    other_task, other_run = await new_task(store, owner, first_run=True, created_at=at(0))
    assert first is not None and other_run is not None
    by_status = {
        status: make_execution(task, status=status, created_at=at(1))
        for status in (
            ExecutionStatus.RETRYING,
            ExecutionStatus.PROCESSING,
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
        )
    }
    for execution in by_status.values():
        await insert_execution(store.db, execution)

    deleted_at = at(100)
    assert await store.delete_task(task.id, org(owner), deleted_at) is True
    assert await store.get_task(task.id) is None
    assert await store.get_task(task.id, org(owner)) is None
    assert task.id not in ids((await store.list_tasks(TaskFilter(), 10)).items)

    for queued in (first, by_status[ExecutionStatus.RETRYING]):
        cancelled = await store.get_execution(queued.id)
        assert cancelled is not None
        assert cancelled.status is ExecutionStatus.CANCELLED
        assert cancelled.completed_at == deleted_at
        assert cancelled.updated_at == deleted_at
    for status in (
        ExecutionStatus.PROCESSING,
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
    ):
        assert await store.get_execution(by_status[status].id) == by_status[status]

    assert await store.get_task(other_task.id) == other_task
    assert await store.get_execution(other_run.id) == other_run

    assert await store.delete_task(task.id, org(owner), at(200)) is False
    assert await store.delete_task(task.id, None, at(200)) is False


async def test_delete_task_of_another_owner_is_false(store: SqlStore) -> None:
    owner = await new_user(store)
    other = await new_user(store)
    task, run = await new_task(store, owner, first_run=True)
    assert run is not None
    assert await store.delete_task(task.id, org(other), at(1)) is False
    assert await store.get_task(task.id) == task
    assert await store.get_execution(run.id) == run
    assert await store.delete_task("no-such-task", None, at(1)) is False
    assert await store.delete_task(task.id, None, at(2)) is True


async def test_list_tasks_filters(store: SqlStore) -> None:
    alice = await new_user(store)
    bob = await new_user(store)
    specs: list[tuple[User, str, TaskStatus, TaskType, str]] = [
        (alice, "nightly report", TaskStatus.ACTIVE, TaskType.RECURRING, "http"),
        (alice, "send email", TaskStatus.PAUSED, TaskType.ONE_TIME, "email"),
        (alice, "cleanup", TaskStatus.COMPLETED, TaskType.DELAYED, "noop"),
        (bob, "Nightly backup", TaskStatus.ACTIVE, TaskType.RECURRING, "shell"),
        (bob, "ping", TaskStatus.FAILED, TaskType.ONE_TIME, "http"),
    ]
    made: dict[str, Task] = {}
    for i, (owner, name, status, kind, handler) in enumerate(specs):
        task, _ = await new_task(
            store, owner, name=name, status=status, type=kind, handler=handler, created_at=at(i)
        )
        made[name] = task
    gone, _ = await new_task(store, alice, name="nightly deleted", created_at=at(10))
    await store.delete_task(gone.id, None, at(11))

    async def names(**filters: Any) -> list[str]:
        page = await store.list_tasks(TaskFilter(**filters), 100)
        assert page.next_cursor is None
        return [t.name for t in page.items]

    assert await names() == [
        "ping",
        "Nightly backup",
        "cleanup",
        "send email",
        "nightly report",
    ]
    assert await names(org_id=org(alice)) == ["cleanup", "send email", "nightly report"]
    assert await names(org_id=org(bob)) == ["ping", "Nightly backup"]
    assert await names(status=TaskStatus.ACTIVE) == ["Nightly backup", "nightly report"]
    assert await names(status=TaskStatus.FAILED) == ["ping"]
    assert await names(type=TaskType.RECURRING) == ["Nightly backup", "nightly report"]
    assert await names(type=TaskType.DELAYED) == ["cleanup"]
    assert await names(handler="http") == ["ping", "nightly report"]
    assert await names(handler="nope") == []
    assert await names(name_contains="nightly") == ["Nightly backup", "nightly report"]
    assert await names(name_contains="NIGHTLY") == ["Nightly backup", "nightly report"]
    assert await names(name_contains="AIL") == ["send email"]
    assert await names(
        org_id=org(alice),
        status=TaskStatus.ACTIVE,
        type=TaskType.RECURRING,
        handler="http",
        name_contains="report",
    ) == ["nightly report"]
    assert await names(org_id=org(bob), handler="email") == []
    assert await names(org_id="no-such-org") == []
    assert made["ping"].created_by == bob.id


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("%", ["100% done"]),
        ("0%", ["100% done"]),
        ("_", ["snake_case"]),
        ("e_c", ["snake_case"]),
        ("\\", ["back\\slash"]),
        ("k\\s", ["back\\slash"]),
        ("'", ["it's"]),
        ("100", ["100 done", "100% done"]),
        ("%%", []),
        ("_a_", []),
    ],
)
async def test_list_tasks_name_contains_is_literal(
    store: SqlStore, needle: str, expected: list[str]
) -> None:
    owner = await new_user(store)
    names = ["100% done", "100 done", "snake_case", "snakeXcase", "back\\slash", "it's"]
    for i, name in enumerate(names):
        await new_task(store, owner, name=name, created_at=at(i))
    page = await store.list_tasks(TaskFilter(name_contains=needle), 100)
    assert sorted(t.name for t in page.items) == sorted(expected)


async def test_list_tasks_pages_newest_first_within_a_filter(store: SqlStore) -> None:
    owner = await new_user(store)
    other = await new_user(store)
    mine = []
    for i in range(7):
        task, _ = await new_task(store, owner, created_at=at(2 * i))
        mine.append(task)
        await new_task(store, other, created_at=at(2 * i + 1))
    deleted, _ = await new_task(store, owner, created_at=at(5.5))
    await store.delete_task(deleted.id, None, at(100))

    pages = await all_pages(
        lambda cursor: store.list_tasks(TaskFilter(org_id=org(owner)), 3, cursor)
    )
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [t.id for p in pages for t in p] == [t.id for t in reversed(mine)]

    everyone = await all_pages(lambda cursor: store.list_tasks(TaskFilter(), 4, cursor))
    assert [len(p) for p in everyone] == [4, 4, 4, 2]
    flat = [t.id for p in everyone for t in p]
    assert len(set(flat)) == 14
    assert deleted.id not in flat


# --- executions ----------------------------------------------------------------


async def test_get_execution_filters_by_owner(store: SqlStore) -> None:
    owner = await new_user(store)
    other = await new_user(store)
    _, run = await new_task(store, owner, first_run=True)
    assert run is not None
    assert await store.get_execution(run.id) == run
    assert await store.get_execution(run.id, org(owner)) == run
    assert await store.get_execution(run.id, org(other)) is None
    assert await store.get_execution("no-such-execution") is None


async def test_list_executions_filters(store: SqlStore) -> None:
    alice = await new_user(store)
    bob = await new_user(store)
    a_task, _ = await new_task(store, alice)
    b_task, _ = await new_task(store, bob)
    plan = [
        (a_task, ExecutionStatus.PENDING),
        (a_task, ExecutionStatus.COMPLETED),
        (a_task, ExecutionStatus.FAILED),
        (b_task, ExecutionStatus.PENDING),
        (b_task, ExecutionStatus.RETRYING),
        (b_task, ExecutionStatus.COMPLETED),
    ]
    made = []
    for i, (task, status) in enumerate(plan):
        execution = make_execution(task, status=status, created_at=at(i))
        await insert_execution(store.db, execution)
        made.append(execution)

    async def listed(**filters: Any) -> list[Execution]:
        page = await store.list_executions(ExecutionFilter(**filters), 100)
        assert page.next_cursor is None
        return page.items

    def newest_first(*indexes: int) -> list[Execution]:
        return [made[i] for i in sorted(indexes, reverse=True)]

    assert await listed() == newest_first(0, 1, 2, 3, 4, 5)
    assert await listed(task_id=a_task.id) == newest_first(0, 1, 2)
    assert await listed(org_id=org(bob)) == newest_first(3, 4, 5)
    assert await listed(status=ExecutionStatus.PENDING) == newest_first(0, 3)
    assert await listed(
        statuses=(ExecutionStatus.PENDING, ExecutionStatus.RETRYING)
    ) == newest_first(0, 3, 4)
    assert await listed(org_id=org(alice), status=ExecutionStatus.COMPLETED) == newest_first(1)
    assert await listed(task_id=b_task.id, org_id=org(alice)) == []
    assert await listed(status=ExecutionStatus.CANCELLED) == []


async def test_list_executions_pages_newest_first(store: SqlStore) -> None:
    owner = await new_user(store)
    task, _ = await new_task(store, owner)
    made = []
    for i in range(7):
        execution = make_execution(task, created_at=at(i // 2))  # pairs share a time
        await insert_execution(store.db, execution)
        made.append(execution)
    pages = await all_pages(
        lambda cursor: store.list_executions(ExecutionFilter(task_id=task.id), 3, cursor)
    )
    assert [len(p) for p in pages] == [3, 3, 1]
    expected = sorted(made, key=lambda e: (e.created_at, e.id), reverse=True)
    assert [e.id for p in pages for e in p] == ids(expected)


async def test_retry_history(store: SqlStore) -> None:
    owner = await new_user(store)
    _, run = await new_task(store, owner, first_run=True)
    assert run is not None
    assert await store.retry_history(run.id) == []
    assert await store.retry_history("no-such-execution") == []

    await insert_retry(store.db, run.id, 2, at(20), {"message": "second"}, None)
    await insert_retry(store.db, run.id, 1, at(10), {"message": "first"}, at(15))
    history = await store.retry_history(run.id)
    assert [(r.attempt, r.error, r.failed_at, r.next_run_at) for r in history] == [
        (1, {"message": "first"}, at(10), at(15)),
        (2, {"message": "second"}, at(20), None),
    ]
    assert all(r.execution_id == run.id for r in history)
    assert len({r.id for r in history}) == 2


# --- dead letter ---------------------------------------------------------------


async def test_dead_letter_get_list_delete_scoped_by_owner(store: SqlStore) -> None:
    alice = await new_user(store)
    bob = await new_user(store)
    dead: dict[int, DeadLetterJob] = {}
    for i, owner in enumerate((alice, alice, bob)):
        _, run = await new_task(store, owner, first_run=True)
        assert run is not None
        dead[i] = make_dead_letter(run, created_at=at(i))
        await insert_dead_letter(store.db, dead[i])

    assert await store.get_dead_letter(dead[0].id) == dead[0]
    assert await store.get_dead_letter(dead[0].id, org(alice)) == dead[0]
    assert await store.get_dead_letter(dead[0].id, org(bob)) is None
    assert await store.get_dead_letter("no-such-dead-letter") is None

    assert (await store.list_dead_letter(None, 10)).items == [dead[2], dead[1], dead[0]]
    assert (await store.list_dead_letter(org(alice), 10)).items == [dead[1], dead[0]]
    assert (await store.list_dead_letter(org(bob), 10)).items == [dead[2]]

    assert await store.delete_dead_letter(dead[0].id, org(bob)) is False
    assert await store.get_dead_letter(dead[0].id) == dead[0]
    assert await store.delete_dead_letter(dead[0].id, org(alice)) is True
    assert await store.delete_dead_letter(dead[0].id, org(alice)) is False
    assert await store.get_dead_letter(dead[0].id) is None
    assert await store.delete_dead_letter(dead[2].id, None) is True
    assert (await store.list_dead_letter(None, 10)).items == [dead[1]]


async def test_list_dead_letter_pages(store: SqlStore) -> None:
    owner = await new_user(store)
    made = []
    for i in range(5):
        _, run = await new_task(store, owner, first_run=True)
        assert run is not None
        dead = make_dead_letter(run, created_at=at(i))
        await insert_dead_letter(store.db, dead)
        made.append(dead)
    pages = await all_pages(lambda cursor: store.list_dead_letter(org(owner), 2, cursor))
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [d.id for p in pages for d in p] == [d.id for d in reversed(made)]


# --- refresh tokens ------------------------------------------------------------


async def test_refresh_token_add_and_get(store: SqlStore) -> None:
    user = await new_user(store)
    token = make_refresh_token(user.id, created_at=at(0))
    await store.add_refresh_token(token)
    assert await store.get_refresh_token(token.token_hash) == token
    assert await store.get_refresh_token("no-such-hash") is None


async def test_refresh_token_is_spent_once(store: SqlStore) -> None:
    user = await new_user(store)
    token = make_refresh_token(user.id)
    await store.add_refresh_token(token)
    assert await store.spend_refresh_token(token.id, at(1)) is True
    assert await store.spend_refresh_token(token.id, at(2)) is False
    stored = await store.get_refresh_token(token.token_hash)
    assert stored == dataclasses.replace(token, used_at=at(1))
    assert await store.spend_refresh_token("no-such-token", at(3)) is False


async def test_revoked_family_cannot_be_spent(store: SqlStore) -> None:
    user = await new_user(store)
    first = make_refresh_token(user.id)
    second = make_refresh_token(user.id, family_id=first.family_id)
    elsewhere = make_refresh_token(user.id)
    for token in (first, second, elsewhere):
        await store.add_refresh_token(token)
    assert await store.spend_refresh_token(first.id, at(1)) is True

    await store.revoke_token_family(first.family_id, at(2))
    assert await store.spend_refresh_token(second.id, at(3)) is False
    for token in (first, second):
        stored = await store.get_refresh_token(token.token_hash)
        assert stored is not None
        assert stored.revoked_at == at(2)
    assert await store.spend_refresh_token(elsewhere.id, at(4)) is True

    await store.revoke_token_family(first.family_id, at(9))
    stored = await store.get_refresh_token(first.token_hash)
    assert stored is not None
    assert stored.revoked_at == at(2), "revoking again keeps the first revocation time"


async def test_revoke_user_tokens(store: SqlStore) -> None:
    user = await new_user(store)
    other = await new_user(store)
    mine = [make_refresh_token(user.id) for _ in range(3)]
    theirs = make_refresh_token(other.id)
    for token in (*mine, theirs):
        await store.add_refresh_token(token)
    await store.revoke_user_tokens(user.id, at(5))
    for token in mine:
        assert await store.spend_refresh_token(token.id, at(6)) is False
        stored = await store.get_refresh_token(token.token_hash)
        assert stored is not None
        assert stored.revoked_at == at(5)
    assert await store.spend_refresh_token(theirs.id, at(6)) is True


async def test_duplicate_refresh_token_hash_is_rejected(store: SqlStore) -> None:
    user = await new_user(store)
    token = make_refresh_token(user.id)
    await store.add_refresh_token(token)
    with pytest.raises(DuplicateKey):
        await store.add_refresh_token(make_refresh_token(user.id, token_hash=token.token_hash))


# --- settings ------------------------------------------------------------------


async def test_settings_put_if_absent_keeps_the_first_value(store: SqlStore) -> None:
    assert await store.get_setting("jwt_secret") is None
    assert await store.put_setting_if_absent("jwt_secret", "first") == "first"
    assert await store.put_setting_if_absent("jwt_secret", "second") == "first"
    assert await store.get_setting("jwt_secret") == "first"
    assert await store.get_setting("other") is None
    assert await store.put_setting_if_absent("other", "") == ""
    assert await store.get_setting("other") == ""


# --- nodes ---------------------------------------------------------------------


async def test_upsert_node_twice_updates_its_heartbeat(store: SqlStore) -> None:
    node = make_node(started_at=at(0), roles=("api", "worker"))
    await store.upsert_node(node)
    assert await store.list_nodes() == [node]

    beat = dataclasses.replace(node, last_heartbeat=at(5), roles=("worker",))
    await store.upsert_node(beat)
    assert await store.list_nodes() == [beat]


async def test_list_expire_and_delete_nodes(store: SqlStore) -> None:
    old = make_node(started_at=at(0), last_heartbeat=at(10))
    edge = make_node(started_at=at(1), last_heartbeat=at(20))
    fresh = make_node(started_at=at(2), last_heartbeat=at(30), roles=())
    for node in (fresh, old, edge):
        await store.upsert_node(node)

    assert await store.list_nodes() == [old, edge, fresh]
    assert await store.list_nodes(alive_since=at(20)) == [edge, fresh]
    assert await store.list_nodes(alive_since=at(31)) == []

    assert await store.expire_nodes(at(20)) == 1
    assert await store.list_nodes() == [edge, fresh]
    assert await store.expire_nodes(at(20)) == 0

    await store.delete_node(edge.id)
    await store.delete_node("no-such-node")
    assert await store.list_nodes() == [fresh]


# --- idempotency ---------------------------------------------------------------


def claim(
    key: str, created_at: datetime, body: str = "{}", org_id: str = "org-1"
) -> IdempotencyClaim:
    return IdempotencyClaim(
        org_id,
        "user-1",
        key,
        f"fp-{key}",
        created_at,
        created_at - timedelta(hours=24),
        lambda result: (201, body),
    )


async def test_a_claim_is_kept_with_the_task_it_created(store: SqlStore) -> None:
    user = await new_user(store)
    first = make_task(user.id)
    await store.create_task(first, None, claim("key", at(0), '{"id": "first"}'))
    stored = await store.get_idempotent("org-1", "user-1", "key")
    assert stored == IdempotentResponse("fp-key", 201, '{"id": "first"}', at(0))
    second = make_task(user.id)
    with pytest.raises(Replay) as replayed:
        await store.create_task(second, None, claim("key", at(1), '{"id": "second"}'))
    assert replayed.value.response == stored
    assert await store.get_task(second.id) is None, "a replayed request writes nothing"
    assert await store.get_idempotent("org-1", "user-2", "key") is None
    assert await store.get_idempotent("org-2", "user-1", "key") is None, "another org's key"
    elsewhere = make_task(user.id)
    await store.create_task(elsewhere, None, claim("key", at(1), '{"id": "2"}', "org-2"))
    assert await store.get_task(elsewhere.id) is not None, "the same key is fresh in another org"


async def test_a_stale_claim_is_replaced(store: SqlStore) -> None:
    user = await new_user(store)
    await store.create_task(make_task(user.id), None, claim("key", at(0), '{"n": 1}'))
    later = at(0) + timedelta(hours=25)
    fresh = make_task(user.id)
    await store.create_task(fresh, None, claim("key", later, '{"n": 2}'))
    stored = await store.get_idempotent("org-1", "user-1", "key")
    assert stored is not None and (stored.body, stored.created_at) == ('{"n": 2}', later)
    assert await store.get_task(fresh.id) is not None


async def test_purge_idempotent_removes_older_entries(store: SqlStore) -> None:
    user = await new_user(store)
    for i in range(4):
        await store.create_task(make_task(user.id), None, claim(f"key-{i}", at(i)))
    assert await store.purge_idempotent(at(2)) == 2
    assert await store.get_idempotent("org-1", "user-1", "key-0") is None
    assert await store.get_idempotent("org-1", "user-1", "key-1") is None
    kept = await store.get_idempotent("org-1", "user-1", "key-2")
    assert kept is not None
    assert kept.created_at == at(2)
    assert await store.purge_idempotent(at(2)) == 0


# --- value round trips ---------------------------------------------------------

MOMENTS = [
    datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2262, 4, 11, 23, 47, 16, 854_775, tzinfo=UTC),
    datetime(2024, 6, 1, 12, 30, 0, 123_456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=[m.isoformat() for m in MOMENTS])
async def test_datetimes_round_trip_exactly(store: SqlStore, moment: datetime) -> None:
    later = moment + timedelta(microseconds=1)
    user = await new_user(store, created_at=moment, updated_at=later)
    task = make_task(
        user.id,
        created_at=moment,
        updated_at=later,
        scheduled_at=moment,
        last_run_at=later,
        next_run_at=moment,
    )
    run = make_execution(task, created_at=moment, scheduled_for=later, run_at=moment)
    await store.create_task(task, run)
    token = make_refresh_token(user.id, created_at=moment, expires_at=later)
    await store.add_refresh_token(token)
    node = make_node(started_at=moment, last_heartbeat=later)
    await store.upsert_node(node)
    await store.create_task(make_task(user.id), None, claim("k", moment))
    dead = make_dead_letter(run, created_at=later)
    await insert_dead_letter(store.db, dead)

    got_user = await store.get_user(user.id)
    got_task = await store.get_task(task.id)
    got_run = await store.get_execution(run.id)
    got_token = await store.get_refresh_token(token.token_hash)
    got_nodes = await store.list_nodes()
    got_idem = await store.get_idempotent("org-1", "user-1", "k")
    got_dead = await store.get_dead_letter(dead.id)
    assert got_user is not None and got_task is not None and got_run is not None
    assert got_token is not None and got_idem is not None and got_dead is not None
    assert (got_user.created_at, got_user.updated_at) == (moment, later)
    assert got_task == task
    assert got_run == run
    assert got_token == token
    assert got_nodes == [node]
    assert got_idem.created_at == moment
    assert got_dead.created_at == later

    times = [
        got_user.created_at,
        got_task.created_at,
        got_task.scheduled_at,
        got_task.last_run_at,
        got_run.run_at,
        got_run.scheduled_for,
        got_token.expires_at,
        got_nodes[0].last_heartbeat,
        got_idem.created_at,
        got_dead.created_at,
    ]
    for value in times:
        assert value is not None
        assert value.utcoffset() == timedelta(0), f"{value!r} is not aware UTC"


PAYLOADS: list[Any] = [
    {"nested": {"deeper": {"list": [1, 2, [3, {"k": "v"}]], "empty": {}, "none": []}}},
    {"unicode": 'naïve café ☃ 😀 日本語 \u0000 \n\t "quoted" \\ \'', "ключ": "значение"},
    {"big": 2**53, "small": -(2**53), "zero": 0, "near": 2**53 - 1},
    {"floats": [0.1, -2.5, 1e-300, 1.7976931348623157e308, 3.0, -0.0]},
    {"null": None, "true": True, "false": False},
    None,
    [1, "two", None, 3.5],
    "just a string",
    42,
    {},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=[f"payload{i}" for i in range(len(PAYLOADS))])
async def test_json_payloads_round_trip(store: SqlStore, payload: Any) -> None:
    owner = await new_user(store)
    task = make_task(owner.id, payload=payload)
    run = make_execution(task, payload=payload)
    await store.create_task(task, run)
    dead = make_dead_letter(run, payload=payload, error=payload)
    await insert_dead_letter(store.db, dead)

    got_task = await store.get_task(task.id)
    got_run = await store.get_execution(run.id)
    got_dead = await store.get_dead_letter(dead.id)
    assert got_task is not None and got_run is not None and got_dead is not None
    for value in (got_task.payload, got_run.payload, got_dead.payload, got_dead.error):
        # repr tells 1 from 1.0, and True from 1, which == does not
        assert repr(value) == repr(payload)


# --- cron tick uniqueness ------------------------------------------------------


async def test_one_execution_per_task_and_cron_tick(store: SqlStore) -> None:
    owner = await new_user(store)
    task, _ = await new_task(store, owner, type=TaskType.RECURRING, cron_expression="* * * * *")
    other, _ = await new_task(store, owner, type=TaskType.RECURRING, cron_expression="* * * * *")
    tick = at(60)

    await insert_execution(store.db, make_execution(task), tick_at=tick)
    duplicate = make_execution(task)
    with pytest.raises(DuplicateKey):
        await insert_execution(store.db, duplicate, tick_at=tick)
    assert await store.get_execution(duplicate.id) is None

    await insert_execution(store.db, make_execution(task), tick_at=tick + timedelta(minutes=1))
    await insert_execution(store.db, make_execution(other), tick_at=tick)
    await insert_execution(store.db, make_execution(task), tick_at=None)
    await insert_execution(store.db, make_execution(task), tick_at=None)
    page = await store.list_executions(ExecutionFilter(task_id=task.id), 10)
    assert len(page.items) == 4
