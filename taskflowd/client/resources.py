"""The API's resources as groups of coroutine methods, one method per operation.

`AsyncClient` exposes them as `client.tasks`, `client.executions`, `client.dead_letters`,
`client.api_keys`, `client.auth` and `client.users`. Creates and runs send an
`Idempotency-Key` (a new random one per call unless given; the same on every retry of
that call). `iter…` methods walk every page of a list.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from taskflowd.client.codec import decode
from taskflowd.client.errors import ProtocolError, TaskflowError
from taskflowd.client.models import (
    UNSET,
    ApiKey,
    DeadLetter,
    Execution,
    ExecutionDetail,
    JsonIn,
    NewApiKey,
    NewRun,
    NewTask,
    Page,
    Task,
    TaskChanges,
    TokenPair,
    Unset,
    User,
)
from taskflowd.client.transport import Transport
from taskflowd.domain.enums import ExecutionStatus, Role, TaskStatus, TaskType

T = TypeVar("T")
DEFAULT_PAGE = 50
ITER_PAGE = 200


def new_idempotency_key() -> str:
    """A random Idempotency-Key (128 bits)."""
    return uuid.uuid4().hex


def items_of(cls: type[T], data: Any) -> list[T]:
    """The items of a response `{"items": [...], …}` as `cls` instances."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ProtocolError(f"expected a list of {cls.__name__}, got {type(data).__name__}")
    return [decode(cls, item) for item in data["items"]]


def page_of(cls: type[T], data: Any) -> Page[T]:
    """A `Page` of `cls` from a list response `{"items": [...], "nextCursor": …}`."""
    return Page(tuple(items_of(cls, data)), data.get("nextCursor"))


async def every_item(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """Each item of each page `fetch(cursor)` returns, following `next_cursor` to the end."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class WaitTimeout(TaskflowError, TimeoutError):
    """`wait()` gave up before the execution reached a final state; `execution` is the
    last state seen."""

    def __init__(self, execution: Execution, timeout_s: float) -> None:
        self.execution = execution
        super().__init__(
            f"execution {execution.id} is still {execution.status.value} after {timeout_s:g} s"
        )


class _Resource:
    def __init__(self, transport: Transport) -> None:
        self._http = transport


class Tasks(_Resource):
    """/api/v1/tasks: define jobs, run them, follow their executions."""

    async def list(
        self,
        *,
        status: TaskStatus | None = None,
        type: TaskType | None = None,
        handler: str | None = None,
        search: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[Task]:
        """One page of the caller's tasks (an admin's: everyone's), newest first."""
        params = {
            "status": status,
            "type": type,
            "handler": handler,
            "search": search,
            "limit": limit,
            "cursor": cursor,
        }
        return page_of(Task, await self._http.call("GET", "/api/v1/tasks", params=params))

    def iter(
        self,
        *,
        status: TaskStatus | None = None,
        type: TaskType | None = None,
        handler: str | None = None,
        search: str | None = None,
        page_size: int = ITER_PAGE,
    ) -> AsyncIterator[Task]:
        """Every task `list` would show, page after page."""
        return every_item(
            lambda cursor: self.list(
                status=status,
                type=type,
                handler=handler,
                search=search,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def get(self, task_id: str) -> Task:
        return decode(Task, await self._http.call("GET", f"/api/v1/tasks/{task_id}"))

    async def create(self, task: NewTask, *, idempotency_key: str | None = None) -> Task:
        """Create one task; retried safely under one Idempotency-Key."""
        data = await self._http.call(
            "POST",
            "/api/v1/tasks",
            body=task.to_json(),
            idempotency_key=idempotency_key or new_idempotency_key(),
            ok=(201,),
        )
        return decode(Task, data)

    async def create_batch(
        self, tasks: Sequence[NewTask], *, idempotency_key: str | None = None
    ) -> builtins.list[Task]:
        """Create up to 500 tasks in one request, all or none (a 422 names the bad item,
        e.g. `items[3].cronExpression`)."""
        data = await self._http.call(
            "POST",
            "/api/v1/tasks/batch",
            body={"items": [task.to_json() for task in tasks]},
            idempotency_key=idempotency_key or new_idempotency_key(),
            ok=(201,),
        )
        return items_of(Task, data)

    async def update(self, task_id: str, changes: TaskChanges) -> Task:
        data = await self._http.call("PATCH", f"/api/v1/tasks/{task_id}", body=changes.to_json())
        return decode(Task, data)

    async def delete(self, task_id: str) -> None:
        """Delete a task (soft); its queued runs are cancelled."""
        await self._http.call("DELETE", f"/api/v1/tasks/{task_id}", ok=(204,))

    async def run(
        self,
        task_id: str,
        payload: JsonIn | Unset = UNSET,
        *,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        """Queue one run: now, at `run_at` or after `delay_ms`, with its own `payload` and
        `priority` (left out: the task's). Returns the new PENDING execution."""
        spec = NewRun(payload, priority, run_at, delay_ms).to_json()
        data = await self._http.call(
            "POST",
            f"/api/v1/tasks/{task_id}/run",
            body=spec or None,
            idempotency_key=idempotency_key or new_idempotency_key(),
            ok=(202,),
        )
        return decode(Execution, data)

    async def runs(
        self, task_id: str, runs: Sequence[NewRun], *, idempotency_key: str | None = None
    ) -> builtins.list[Execution]:
        """Queue up to 1,000 runs in one request and one transaction, all or none."""
        data = await self._http.call(
            "POST",
            f"/api/v1/tasks/{task_id}/runs",
            body={"items": [run.to_json() for run in runs]},
            idempotency_key=idempotency_key or new_idempotency_key(),
            ok=(202,),
        )
        return items_of(Execution, data)

    async def pause(self, task_id: str) -> Task:
        return decode(Task, await self._http.call("POST", f"/api/v1/tasks/{task_id}/pause"))

    async def resume(self, task_id: str) -> Task:
        return decode(Task, await self._http.call("POST", f"/api/v1/tasks/{task_id}/resume"))

    async def executions(
        self,
        task_id: str,
        *,
        status: ExecutionStatus | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """One page of the executions of one task, newest first."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        data = await self._http.call("GET", f"/api/v1/tasks/{task_id}/executions", params=params)
        return page_of(Execution, data)


class Executions(_Resource):
    """/api/v1/executions: runs, their outcome and retry history."""

    async def list(
        self,
        *,
        task_id: str | None = None,
        status: ExecutionStatus | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[Execution]:
        params = {"taskId": task_id, "status": status, "limit": limit, "cursor": cursor}
        return page_of(Execution, await self._http.call("GET", "/api/v1/executions", params=params))

    def iter(
        self,
        *,
        task_id: str | None = None,
        status: ExecutionStatus | None = None,
        page_size: int = ITER_PAGE,
    ) -> AsyncIterator[Execution]:
        return every_item(
            lambda cursor: self.list(task_id=task_id, status=status, limit=page_size, cursor=cursor)
        )

    async def get(self, execution_id: str) -> ExecutionDetail:
        data = await self._http.call("GET", f"/api/v1/executions/{execution_id}")
        return decode(ExecutionDetail, data)

    async def cancel(self, execution_id: str) -> Execution:
        data = await self._http.call("POST", f"/api/v1/executions/{execution_id}/cancel")
        return decode(Execution, data)

    async def wait(
        self,
        execution_id: str,
        *,
        timeout_s: float = 60.0,
        poll_s: float = 0.05,
        max_poll_s: float = 1.0,
    ) -> ExecutionDetail:
        """Poll until the execution is COMPLETED, FAILED or CANCELLED and return it (a
        failure is an outcome, not an exception). Polls start `poll_s` apart and back off
        to `max_poll_s`; raises `WaitTimeout` (with the last state) after `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        interval = poll_s
        while True:
            execution = await self.get(execution_id)
            if execution.is_final:
                return execution
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(execution, timeout_s)
            await asyncio.sleep(min(interval, remaining))
            interval = min(max_poll_s, interval * 1.5)


class DeadLetters(_Resource):
    """/api/v1/dead-letter: jobs that ran out of attempts."""

    async def list(
        self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page[DeadLetter]:
        data = await self._http.call(
            "GET", "/api/v1/dead-letter", params={"limit": limit, "cursor": cursor}
        )
        return page_of(DeadLetter, data)

    def iter(self, *, page_size: int = ITER_PAGE) -> AsyncIterator[DeadLetter]:
        return every_item(lambda cursor: self.list(limit=page_size, cursor=cursor))

    async def retry(self, dead_letter_id: str) -> Execution:
        """One more attempt for the dead-lettered execution; returns it, queued again."""
        data = await self._http.call(
            "POST", f"/api/v1/dead-letter/{dead_letter_id}/retry", ok=(202,)
        )
        return decode(Execution, data)

    async def delete(self, dead_letter_id: str) -> None:
        await self._http.call("DELETE", f"/api/v1/dead-letter/{dead_letter_id}", ok=(204,))


class ApiKeys(_Resource):
    """/api/v1/api-keys: credentials for programs (created with a password sign-in)."""

    async def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[ApiKey]:
        data = await self._http.call(
            "GET", "/api/v1/api-keys", params={"limit": limit, "cursor": cursor}
        )
        return page_of(ApiKey, data)

    def iter(self, *, page_size: int = ITER_PAGE) -> AsyncIterator[ApiKey]:
        return every_item(lambda cursor: self.list(limit=page_size, cursor=cursor))

    async def create(self, name: str, *, expires_at: datetime | None = None) -> NewApiKey:
        """A new key; its secret (`key`) is in this answer only."""
        body: dict[str, Any] = {"name": name}
        if expires_at is not None:
            body["expiresAt"] = expires_at.isoformat()
        data = await self._http.call("POST", "/api/v1/api-keys", body=body, ok=(201,))
        return decode(NewApiKey, data)

    async def revoke(self, api_key_id: str) -> None:
        await self._http.call("DELETE", f"/api/v1/api-keys/{api_key_id}", ok=(204,))


class Auth(_Resource):
    """/api/v1/auth. `login` and `refresh` make the client use the new access token."""

    async def register(self, email: str, password: str, *, first_name: str, last_name: str) -> User:
        body = {
            "email": email,
            "password": password,
            "firstName": first_name,
            "lastName": last_name,
        }
        data = await self._http.call("POST", "/api/v1/auth/register", body=body, ok=(201,))
        return decode(User, data)

    async def login(self, email: str, password: str) -> TokenPair:
        data = await self._http.call(
            "POST", "/api/v1/auth/login", body={"email": email, "password": password}, token=""
        )
        pair = decode(TokenPair, data)
        self._http.credential = pair.access_token
        return pair

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spend `refresh_token` for a new pair (the old one stops working)."""
        data = await self._http.call(
            "POST", "/api/v1/auth/refresh", body={"refreshToken": refresh_token}, token=""
        )
        pair = decode(TokenPair, data)
        self._http.credential = pair.access_token
        return pair

    async def logout(self, refresh_token: str) -> None:
        """End the session `refresh_token` belongs to."""
        await self._http.call(
            "POST",
            "/api/v1/auth/logout",
            body={"refreshToken": refresh_token},
            ok=(204,),
            token="",
        )

    async def me(self) -> User:
        return decode(User, await self._http.call("GET", "/api/v1/auth/me"))

    async def change_password(self, current_password: str, new_password: str) -> None:
        """Change the caller's password; every session of theirs ends."""
        body = {"currentPassword": current_password, "newPassword": new_password}
        await self._http.call("POST", "/api/v1/auth/password", body=body, ok=(204,))


class Users(_Resource):
    """/api/v1/users: user administration (ADMIN only)."""

    async def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[User]:
        data = await self._http.call(
            "GET", "/api/v1/users", params={"limit": limit, "cursor": cursor}
        )
        return page_of(User, data)

    def iter(self, *, page_size: int = ITER_PAGE) -> AsyncIterator[User]:
        return every_item(lambda cursor: self.list(limit=page_size, cursor=cursor))

    async def get(self, user_id: str) -> User:
        return decode(User, await self._http.call("GET", f"/api/v1/users/{user_id}"))

    async def create(
        self,
        email: str,
        password: str,
        *,
        first_name: str,
        last_name: str,
        role: Role = Role.USER,
        is_active: bool = True,
    ) -> User:
        body = {
            "email": email,
            "password": password,
            "firstName": first_name,
            "lastName": last_name,
            "role": role.value,
            "isActive": is_active,
        }
        return decode(User, await self._http.call("POST", "/api/v1/users", body=body, ok=(201,)))

    async def update(
        self,
        user_id: str,
        *,
        role: Role | None = None,
        is_active: bool | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """Change what is given; None leaves a field as it is."""
        body = {
            key: value
            for key, value in (
                ("role", role.value if role is not None else None),
                ("isActive", is_active),
                ("firstName", first_name),
                ("lastName", last_name),
            )
            if value is not None
        }
        return decode(User, await self._http.call("PATCH", f"/api/v1/users/{user_id}", body=body))

    async def delete(self, user_id: str) -> None:
        """Delete (soft) a user and end their sessions."""
        await self._http.call("DELETE", f"/api/v1/users/{user_id}", ok=(204,))
