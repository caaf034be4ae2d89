"""The `Store` protocol: durable records of taskflowd, independent of the database.

Every method raises `StoreUnavailable` when the database cannot be reached and
`StoreError` on other storage failures. Lists are newest first with an opaque cursor.
`org_id=None` means "any org" (a site admin's view); a string restricts to that org, and
a record of another org is then absent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from taskflowd.domain.entities import (
    ApiKey,
    DeadLetterJob,
    Execution,
    Node,
    RefreshToken,
    RetryRecord,
    Task,
    User,
)
from taskflowd.domain.enums import ExecutionStatus, TaskStatus, TaskType
from taskflowd.domain.errors import TaskflowError
from taskflowd.domain.orgs import Member, Membership, Org, OrgRole
from taskflowd.store.render import Shape

if TYPE_CHECKING:
    from taskflowd.audit.journal import Journal
    from taskflowd.audit.model import AuditEvent
    from taskflowd.audit.records import AuditRecords
    from taskflowd.store.db import Conn

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    org_id: str | None = None
    status: TaskStatus | None = None
    type: TaskType | None = None
    handler: str | None = None
    name_contains: str | None = None

    def in_org(self, org_id: str | None) -> TaskFilter:
        """This filter within `org_id` (None: every org). Made field by field: it runs on
        every list request, where `dataclasses.replace` costs more than twice as much."""
        return TaskFilter(org_id, self.status, self.type, self.handler, self.name_contains)


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    org_id: str | None = None
    task_id: str | None = None
    status: ExecutionStatus | None = None
    statuses: tuple[ExecutionStatus, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class IdempotentResponse:
    fingerprint: str
    status: int
    body: str
    created_at: datetime


Render = Callable[[Any], tuple[int, str]]
"""The response (status, JSON body) a request gives for its result."""


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A request's claim on (org, user, key); `stale_before` marks records old enough to
    replace, and `render` turns the request's result into the response kept for replays."""

    org_id: str
    user_id: str
    key: str
    fingerprint: str
    created_at: datetime
    stale_before: datetime
    render: Render


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What `Store.add_runs` inserts for the task it read: PENDING runs of it, and the
    audit events that record them."""

    runs: Sequence[Execution]
    events: Sequence[AuditEvent] = ()


Then = Callable[["Conn", Sequence[Execution]], Awaitable[None]]
"""Called inside the transaction that inserted executions (those inserted now), after
the inserts: more work for the same commit (the local worker's claim of them). It must
not wait for row locks: on PostgreSQL the transaction may hold the audit chain's head."""

Planner = Callable[[Task | None], RunPlan]
"""Plans the runs of the task read (None: no such live task), or raises to refuse them
(nothing is written then). Pure: it runs inside the transaction, in SQLite's writer
thread."""


class Replay(TaskflowError):
    """The key was used before: `response` is what the first request answered."""

    code = "idempotent_replay"

    def __init__(self, response: IdempotentResponse) -> None:
        super().__init__("this Idempotency-Key was used before")
        self.response = response


class Store(Protocol):
    @property
    def journal(self) -> Journal:
        """The audit trail's writer: a change made inside `journal.recording(event)`
        writes the event in its own transaction (see `taskflowd.audit.journal`)."""

    @property
    def audit(self) -> AuditRecords:
        """The audit trail as recorded: read, verified and pruned, never changed."""

    # --- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        """Connect and apply pending migrations."""

    async def stop(self) -> None: ...
    async def ping(self) -> None:
        """Round-trip to the database; raises StoreUnavailable when it does not answer."""

    # --- users -----------------------------------------------------------------
    async def create_user(self, user: User) -> User:
        """Insert a user; raises DuplicateKey when a live user has that email."""

    async def get_user(self, user_id: str) -> User | None:
        """A live (not soft-deleted) user."""

    async def get_user_by_email(self, email: str) -> User | None: ...
    async def update_user(self, user: User) -> User | None:
        """Write all mutable fields of a live user; None when it is gone."""

    async def delete_user(self, user_id: str, at: datetime) -> bool:
        """Soft-delete; returns False when no live user had that id."""

    async def list_users(self, limit: int, cursor: str | None = None) -> Page[User]: ...
    async def count_users(self) -> int: ...

    # --- tasks -----------------------------------------------------------------
    async def create_task(
        self,
        task: Task,
        first_run: Execution | None = None,
        claim: IdempotencyClaim | None = None,
        then: Then | None = None,
    ) -> Task:
        """Insert a task and, atomically with it, its first execution when given, and the
        claim's idempotency record (`claim.render` receives the task); call `then` with
        the executions inserted in the same transaction. Raises Replay, writing nothing,
        when the claim's key holds a fresh record."""

    async def create_tasks(
        self,
        entries: Sequence[tuple[Task, Execution | None]],
        claim: IdempotencyClaim | None = None,
        then: Then | None = None,
    ) -> list[Task]:
        """`create_task` for many tasks in one transaction (`claim.render` receives the
        list of tasks)."""

    async def add_runs(
        self,
        task_id: str,
        org_id: str | None,
        plan: Planner,
        claim: IdempotencyClaim | None = None,
        then: Then | None = None,
    ) -> tuple[list[Execution], list[Execution]]:
        """In one transaction (one hand-over to SQLite's writer): raise Replay when the
        claim's key holds a fresh record; read the live task (in `org_id` unless None);
        insert the PENDING runs `plan` makes of it, where a run whose `idempotency_key`
        the task has already is replaced by the stored execution; record the claim
        (`claim.render` receives every execution in order); call `then` with the
        executions inserted now; append the plan's audit events when a row changed.
        Returns (every execution in order, those inserted now).
        """

    async def get_task_json(self, task_id: str, org_id: str | None, shape: Shape) -> str | None:
        """The task rendered as a JSON object in `shape`."""

    async def list_tasks_json(
        self, filters: TaskFilter, shape: Shape, limit: int, cursor: str | None = None
    ) -> Page[str]: ...

    async def get_task(self, task_id: str, org_id: str | None = None) -> Task | None: ...
    async def update_task(self, task: Task, expected_status: TaskStatus) -> Task | None:
        """Write the user-set fields, status and next run of a live task whose status is
        still `expected_status` (the engine may have finished it meanwhile); None when it
        is gone or its status changed. `last_run_at` belongs to the engine and is kept."""

    async def delete_task(self, task_id: str, org_id: str | None, at: datetime) -> bool:
        """Soft-delete and cancel its queued executions; False when not found."""

    async def list_tasks(
        self, filters: TaskFilter, limit: int, cursor: str | None = None
    ) -> Page[Task]: ...

    # --- executions ------------------------------------------------------------
    async def get_execution(
        self, execution_id: str, org_id: str | None = None
    ) -> Execution | None: ...
    async def list_executions(
        self, filters: ExecutionFilter, limit: int, cursor: str | None = None
    ) -> Page[Execution]: ...
    async def retry_history(self, execution_id: str) -> list[RetryRecord]: ...
    async def get_execution_json(
        self, execution_id: str, org_id: str | None, shape: Shape, history: Shape
    ) -> str | None:
        """The execution in `shape` with its retry history (`history`) as `retryHistory`."""

    async def list_executions_json(
        self, filters: ExecutionFilter, shape: Shape, limit: int, cursor: str | None = None
    ) -> Page[str]: ...

    # --- dead letter -----------------------------------------------------------
    async def get_dead_letter(
        self, dead_letter_id: str, org_id: str | None = None
    ) -> DeadLetterJob | None: ...
    async def list_dead_letter(
        self, org_id: str | None, limit: int, cursor: str | None = None
    ) -> Page[DeadLetterJob]: ...
    async def list_dead_letter_json(
        self, org_id: str | None, shape: Shape, limit: int, cursor: str | None = None
    ) -> Page[str]: ...
    async def delete_dead_letter(self, dead_letter_id: str, org_id: str | None) -> bool: ...

    # --- refresh tokens --------------------------------------------------------
    async def add_refresh_token(self, token: RefreshToken) -> None: ...
    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None: ...
    async def spend_refresh_token(self, token_id: str, at: datetime) -> bool:
        """Mark a live token used; False when it was already used or revoked (a replay)."""

    async def revoke_token_family(self, family_id: str, at: datetime) -> None: ...
    async def revoke_user_tokens(self, user_id: str, at: datetime) -> None: ...

    # --- API keys --------------------------------------------------------------
    async def create_api_key(self, key: ApiKey) -> ApiKey: ...
    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not."""

    async def list_api_keys(
        self, user_id: str, org_id: str | None, limit: int, cursor: str | None = None
    ) -> Page[ApiKey]:
        """A user's keys (in `org_id`, unless None) that are not revoked, newest first."""

    async def revoke_api_key(
        self, key_id: str, user_id: str | None, org_id: str | None, at: datetime
    ) -> ApiKey | None:
        """Revoke a live key (of `user_id` in `org_id`, unless None); None when there was
        none."""

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        """Record a use of the key (never moves `last_used_at` back)."""

    # --- organizations -----------------------------------------------------------
    async def create_org(
        self, name: str, owner_id: str, at: datetime, org_id: str | None = None
    ) -> Org:
        """A new org (slug from its name, unique; id `org_id` or a new one) with
        `owner_id` as its OWNER."""

    async def get_org(self, org_id: str) -> Org | None:
        """The live (not deleted) org with id or slug `org_id`."""

    async def list_orgs(
        self, member_id: str | None, limit: int, cursor: str | None = None
    ) -> Page[Org]:
        """Live orgs that `member_id` belongs to (None: all), newest first."""

    async def update_org(self, org: Org) -> Org | None:
        """Write an org's name and quota overrides; None when it is gone."""

    async def delete_org(self, org_id: str, at: datetime) -> list[str]:
        """Delete the org with its tasks and queued jobs; the ids of its former members."""

    async def memberships(self, user_id: str) -> list[Membership]: ...
    async def get_member(self, org_id: str, user_id: str) -> Member | None: ...
    async def list_members(
        self, org_id: str, limit: int, cursor: str | None = None
    ) -> Page[Member]: ...
    async def add_member(self, org_id: str, user_id: str, role: OrgRole, at: datetime) -> bool:
        """False when the user is a member already."""

    async def set_member_role(self, org_id: str, user_id: str, role: OrgRole) -> bool | None:
        """None when not a member; False (nothing changed) when the org would be left
        without an OWNER."""

    async def remove_member(self, org_id: str, user_id: str) -> bool | None:
        """None when not a member; False for the org's last OWNER."""

    async def count_tasks(self, org_id: str) -> int: ...
    async def count_workflows(self, org_id: str) -> int: ...
    async def count_running(self, org_id: str) -> int: ...

    # --- settings, nodes, idempotency -----------------------------------------
    async def get_setting(self, key: str) -> str | None: ...
    async def put_setting_if_absent(self, key: str, value: str) -> str:
        """Store `value` unless the key exists; returns the value now stored."""

    async def upsert_node(self, node: Node) -> None: ...
    async def delete_node(self, node_id: str) -> None: ...
    async def list_nodes(self, alive_since: datetime | None = None) -> list[Node]: ...
    async def expire_nodes(self, before: datetime) -> int: ...

    async def get_idempotent(
        self, org_id: str, user_id: str, key: str
    ) -> IdempotentResponse | None: ...
    async def purge_idempotent(self, before: datetime) -> int: ...
