"""`Client`: the same API as `AsyncClient`, as plain blocking calls.

Each `Client` runs an event loop of its own in a private daemon thread, where its
`AsyncClient` lives; a call hands the coroutine to that loop and waits for the result.
So it works from plain synchronous code, and also from a thread whose own event loop
is running (a call then blocks that loop while it waits, as any blocking call does).
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import Future
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from taskflowd.client.aio import DEFAULT_URL, AsyncClient
from taskflowd.client.audit import AuditEvent
from taskflowd.client.blocking import Call, pages
from taskflowd.client.models import (
    UNSET,
    ApiKey,
    DeadLetter,
    Execution,
    ExecutionDetail,
    Health,
    JsonIn,
    Member,
    NewApiKey,
    NewRun,
    NewTask,
    Org,
    Page,
    Readiness,
    Stats,
    Task,
    TaskChanges,
    TokenPair,
    Unset,
    User,
)
from taskflowd.client.resources import DEFAULT_PAGE, ITER_PAGE
from taskflowd.client.transport import RetryPolicy
from taskflowd.client.webhooks import SyncWebhooks
from taskflowd.client.workflows import SyncWorkflowRuns, SyncWorkflows
from taskflowd.domain.enums import ExecutionStatus, OrgRole, Role, TaskStatus, TaskType

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="taskflowd-client", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the private loop and wait for its result (or exception)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a Client call cannot be made from inside the Client's own loop")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: don't leave the request running
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Tasks:
    """Blocking `AsyncClient.tasks`; see `taskflowd.client.resources.Tasks`."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.tasks
        self._call = call

    def list(
        self,
        *,
        status: TaskStatus | None = None,
        type: TaskType | None = None,
        handler: str | None = None,
        search: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[Task]:
        return self._call(
            self._aio.list(
                status=status,
                type=type,
                handler=handler,
                search=search,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter(
        self,
        *,
        status: TaskStatus | None = None,
        type: TaskType | None = None,
        handler: str | None = None,
        search: str | None = None,
        page_size: int = ITER_PAGE,
    ) -> Iterator[Task]:
        return pages(
            lambda cursor: self.list(
                status=status,
                type=type,
                handler=handler,
                search=search,
                limit=page_size,
                cursor=cursor,
            )
        )

    def get(self, task_id: str) -> Task:
        return self._call(self._aio.get(task_id))

    def create(self, task: NewTask, *, idempotency_key: str | None = None) -> Task:
        return self._call(self._aio.create(task, idempotency_key=idempotency_key))

    def create_batch(
        self, tasks: Sequence[NewTask], *, idempotency_key: str | None = None
    ) -> builtins.list[Task]:
        return self._call(self._aio.create_batch(tasks, idempotency_key=idempotency_key))

    def update(self, task_id: str, changes: TaskChanges) -> Task:
        return self._call(self._aio.update(task_id, changes))

    def delete(self, task_id: str) -> None:
        self._call(self._aio.delete(task_id))

    def run(
        self,
        task_id: str,
        payload: JsonIn | Unset = UNSET,
        *,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        return self._call(
            self._aio.run(
                task_id,
                payload,
                priority=priority,
                run_at=run_at,
                delay_ms=delay_ms,
                idempotency_key=idempotency_key,
            )
        )

    def runs(
        self, task_id: str, runs: Sequence[NewRun], *, idempotency_key: str | None = None
    ) -> builtins.list[Execution]:
        return self._call(self._aio.runs(task_id, runs, idempotency_key=idempotency_key))

    def pause(self, task_id: str) -> Task:
        return self._call(self._aio.pause(task_id))

    def resume(self, task_id: str) -> Task:
        return self._call(self._aio.resume(task_id))

    def executions(
        self,
        task_id: str,
        *,
        status: ExecutionStatus | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[Execution]:
        return self._call(self._aio.executions(task_id, status=status, limit=limit, cursor=cursor))


class Executions:
    """Blocking `AsyncClient.executions`."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.executions
        self._call = call

    def list(
        self,
        *,
        task_id: str | None = None,
        status: ExecutionStatus | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[Execution]:
        return self._call(
            self._aio.list(task_id=task_id, status=status, limit=limit, cursor=cursor)
        )

    def iter(
        self,
        *,
        task_id: str | None = None,
        status: ExecutionStatus | None = None,
        page_size: int = ITER_PAGE,
    ) -> Iterator[Execution]:
        return pages(
            lambda cursor: self.list(task_id=task_id, status=status, limit=page_size, cursor=cursor)
        )

    def get(self, execution_id: str) -> ExecutionDetail:
        return self._call(self._aio.get(execution_id))

    def cancel(self, execution_id: str) -> Execution:
        return self._call(self._aio.cancel(execution_id))

    def wait(
        self,
        execution_id: str,
        *,
        timeout_s: float = 60.0,
        poll_s: float = 0.05,
        max_poll_s: float = 1.0,
    ) -> ExecutionDetail:
        """Block until the execution is final; see `resources.Executions.wait`."""
        return self._call(
            self._aio.wait(execution_id, timeout_s=timeout_s, poll_s=poll_s, max_poll_s=max_poll_s)
        )


class DeadLetters:
    """Blocking `AsyncClient.dead_letters`."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.dead_letters
        self._call = call

    def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[DeadLetter]:
        return self._call(self._aio.list(limit=limit, cursor=cursor))

    def iter(self, *, page_size: int = ITER_PAGE) -> Iterator[DeadLetter]:
        return pages(lambda cursor: self.list(limit=page_size, cursor=cursor))

    def retry(self, dead_letter_id: str) -> Execution:
        return self._call(self._aio.retry(dead_letter_id))

    def delete(self, dead_letter_id: str) -> None:
        self._call(self._aio.delete(dead_letter_id))


class ApiKeys:
    """Blocking `AsyncClient.api_keys`."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.api_keys
        self._call = call

    def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[ApiKey]:
        return self._call(self._aio.list(limit=limit, cursor=cursor))

    def iter(self, *, page_size: int = ITER_PAGE) -> Iterator[ApiKey]:
        return pages(lambda cursor: self.list(limit=page_size, cursor=cursor))

    def create(self, name: str, *, expires_at: datetime | None = None) -> NewApiKey:
        return self._call(self._aio.create(name, expires_at=expires_at))

    def revoke(self, api_key_id: str) -> None:
        self._call(self._aio.revoke(api_key_id))


class Auth:
    """Blocking `AsyncClient.auth`."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.auth
        self._call = call

    def register(self, email: str, password: str, *, first_name: str, last_name: str) -> User:
        return self._call(
            self._aio.register(email, password, first_name=first_name, last_name=last_name)
        )

    def login(self, email: str, password: str) -> TokenPair:
        return self._call(self._aio.login(email, password))

    def refresh(self, refresh_token: str) -> TokenPair:
        return self._call(self._aio.refresh(refresh_token))

    def logout(self, refresh_token: str) -> None:
        self._call(self._aio.logout(refresh_token))

    def me(self) -> User:
        return self._call(self._aio.me())

    def change_password(self, current_password: str, new_password: str) -> None:
        self._call(self._aio.change_password(current_password, new_password))


class Users:
    """Blocking `AsyncClient.users` (ADMIN only)."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.users
        self._call = call

    def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[User]:
        return self._call(self._aio.list(limit=limit, cursor=cursor))

    def iter(self, *, page_size: int = ITER_PAGE) -> Iterator[User]:
        return pages(lambda cursor: self.list(limit=page_size, cursor=cursor))

    def get(self, user_id: str) -> User:
        return self._call(self._aio.get(user_id))

    def create(
        self,
        email: str,
        password: str,
        *,
        first_name: str,
        last_name: str,
        role: Role = Role.USER,
        is_active: bool = True,
    ) -> User:
        return self._call(
            self._aio.create(
                email,
                password,
                first_name=first_name,
                last_name=last_name,
                role=role,
                is_active=is_active,
            )
        )

    def update(
        self,
        user_id: str,
        *,
        role: Role | None = None,
        is_active: bool | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        return self._call(
            self._aio.update(
                user_id,
                role=role,
                is_active=is_active,
                first_name=first_name,
                last_name=last_name,
            )
        )

    def delete(self, user_id: str) -> None:
        self._call(self._aio.delete(user_id))


class Audit:
    """Blocking `AsyncClient.audit`."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.audit
        self._call = call

    def list(
        self,
        *,
        action: str | None = None,
        actor_id: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        return self._call(
            self._aio.list(
                action=action,
                actor_id=actor_id,
                target_type=target_type,
                target_id=target_id,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter(self, *, page_size: int = ITER_PAGE, **filters: Any) -> Iterator[AuditEvent]:
        return pages(lambda cursor: self.list(limit=page_size, cursor=cursor, **filters))

    def export(
        self,
        *,
        action: str | None = None,
        actor_id: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[AuditEvent]:
        return self._call(
            self._aio.export(
                action=action,
                actor_id=actor_id,
                target_type=target_type,
                target_id=target_id,
                since=since,
                until=until,
            )
        )


class Orgs:
    """Blocking `AsyncClient.orgs`."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._aio = client.orgs
        self._call = call

    def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[Org]:
        return self._call(self._aio.list(limit=limit, cursor=cursor))

    def iter(self, *, page_size: int = ITER_PAGE) -> Iterator[Org]:
        return pages(lambda cursor: self.list(limit=page_size, cursor=cursor))

    def create(self, name: str) -> Org:
        return self._call(self._aio.create(name))

    def get(self, org: str) -> Org:
        return self._call(self._aio.get(org))

    def update(
        self, org: str, *, name: str | None = None, quotas: dict[str, int | None] | None = None
    ) -> Org:
        return self._call(self._aio.update(org, name=name, quotas=quotas))

    def delete(self, org: str) -> None:
        self._call(self._aio.delete(org))

    def members(
        self, org: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page[Member]:
        return self._call(self._aio.members(org, limit=limit, cursor=cursor))

    def invite(self, org: str, email: str, role: OrgRole = OrgRole.MEMBER) -> Member:
        return self._call(self._aio.invite(org, email, role))

    def set_role(self, org: str, user_id: str, role: OrgRole) -> Member:
        return self._call(self._aio.set_role(org, user_id, role))

    def remove(self, org: str, user_id: str) -> None:
        self._call(self._aio.remove(org, user_id))


class Client:
    """A blocking client of one taskflowd server; arguments as for `AsyncClient`.

    Use it as `with Client(…) as client:` or call `close()`, which also ends its thread.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        connections: int = 10,
        org: str | None = None,
    ) -> None:
        self._aio = AsyncClient(
            base_url,
            api_key=api_key,
            token=token,
            timeout_s=timeout_s,
            retry=retry,
            connections=connections,
            org=org,
        )
        self._thread: _LoopThread | None = _LoopThread()
        call = self._call
        self.tasks = Tasks(self._aio, call)
        self.executions = Executions(self._aio, call)
        self.dead_letters = DeadLetters(self._aio, call)
        self.api_keys = ApiKeys(self._aio, call)
        self.auth = Auth(self._aio, call)
        self.users = Users(self._aio, call)
        self.workflows = SyncWorkflows(self._aio.workflows, call)
        self.workflow_runs = SyncWorkflowRuns(self._aio.workflow_runs, call)
        self.webhooks = SyncWebhooks(self._aio.webhooks, call)
        self.orgs = Orgs(self._aio, call)
        self.audit = Audit(self._aio, call)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._thread is None:
            coro.close()
            raise RuntimeError("this Client is closed")
        return self._thread.run(coro)

    @property
    def base_url(self) -> str:
        return self._aio.base_url

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the private thread; safe to call twice."""
        if self._thread is None:
            return
        try:
            self._thread.run(self._aio.close())
        finally:
            self._thread.stop()
            self._thread = None

    def health(self) -> Health:
        return self._call(self._aio.health())

    def ready(self) -> Readiness:
        return self._call(self._aio.ready())

    def stats(self) -> Stats:
        return self._call(self._aio.stats())

    def metrics(self, *, token: str = "") -> str:
        return self._call(self._aio.metrics(token=token))

    def openapi(self) -> dict[str, Any]:
        return self._call(self._aio.openapi())
