"""Task, execution and dead-letter operations with their rules; the API and the
dashboard call these, never the store or queue directly for changes.

Isolation: an actor reads and changes the records of the org it acts in only, and those
of other orgs look missing (NotFound), so ids cannot be probed; a site ADMIN who names
no org acts on all. Changes need the MEMBER org role (a VIEWER only reads: Forbidden).
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from taskflowd.audit.model import AuditEvent
from taskflowd.domain import schedule
from taskflowd.domain.entities import DeadLetterJob, Execution, RetryRecord, Task, User, utcnow
from taskflowd.domain.enums import ExecutionStatus, Role, TaskStatus, TaskType
from taskflowd.domain.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from taskflowd.domain.ids import new_execution_ids
from taskflowd.domain.jobs import new_execution, own_job_id, pending_execution, run_job_ids
from taskflowd.domain.orgs import Actor, OrgRole, as_actor
from taskflowd.domain.rules import RunSpec, TaskSpec, validate_run, validate_task
from taskflowd.events import EventBus
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.base import JobQueue, claiming
from taskflowd.services.create_group import Create, CreateGroup
from taskflowd.services.quotas import QuotaBook
from taskflowd.store.base import (
    ExecutionFilter,
    IdempotencyClaim,
    Page,
    RunPlan,
    Store,
    TaskFilter,
)
from taskflowd.store.errors import StoreError
from taskflowd.store.render import Shape

log = logging.getLogger("taskflowd.tasks")

SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(TaskSpec))
AUDITED_FIELDS = (*SPEC_FIELDS, "status")
"""Task fields whose changes the audit trail records."""


def org_scope(who: User | Actor) -> str | None:
    """The org filter for `who`: None (every org) for a site admin acting across orgs."""
    return as_actor(who).scope


def _writer(who: User | Actor) -> Actor:
    """`who` as an Actor allowed to change the org's tasks (Forbidden for a VIEWER)."""
    actor = as_actor(who)
    actor.require(OrgRole.MEMBER, "changing the org's tasks")
    return actor


@dataclass(frozen=True, slots=True)
class ExecutionDetail:
    execution: Execution
    retry_history: list[RetryRecord]


class TaskService:
    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        handlers: HandlerRegistry,
        events: EventBus | None = None,
        quotas: QuotaBook | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.handlers = handlers
        self.events = events or EventBus()
        self.quotas = quotas
        self.journal = store.journal
        self._creates = CreateGroup(self._write_creates)

    def _event(
        self,
        actor: User | Actor,
        action: str,
        org_id: str | None,
        target: tuple[str, str | None],
        changes: dict[str, Any] | None = None,
    ) -> AuditEvent:
        return self.journal.event(action, actor, org_id, target, changes)

    def _task_event(
        self, actor: User | Actor, action: str, before: Task | None, after: Task
    ) -> AuditEvent:
        changes = self.journal.diff(before, after, AUDITED_FIELDS)
        return self._event(actor, action, after.org_id, ("task", after.id), changes)

    # --- validation ------------------------------------------------------------
    def _check(self, actor: User | Actor, spec: TaskSpec) -> None:
        errors = validate_task(spec)
        if spec.handler not in self.handlers:
            errors.append(FieldError("handler", f"unknown handler {spec.handler!r}"))
        elif spec.type is not TaskType.ON_DEMAND or spec.payload is not None:
            # An on-demand task may leave its payload to its runs (checked when they come).
            errors.extend(self.handlers.validate(spec.handler, spec.payload))
        if errors:
            raise ValidationFailed(errors)
        self._check_handler_access(actor, spec.handler, "use")

    def _check_handler_access(self, actor: User | Actor, handler: str, verb: str) -> None:
        admin_only = handler in self.handlers and self.handlers.get(handler).admin_only
        if admin_only and actor.role is not Role.ADMIN:
            raise Forbidden(f"only admins may {verb} tasks using the {handler!r} handler")

    @staticmethod
    def _first_run_at(spec: TaskSpec, now: Any) -> Any:
        cron = schedule.parse_cron(spec.cron_expression) if spec.cron_expression else None
        return schedule.initial_run_at(
            spec.type,
            now=now,
            scheduled_at=spec.scheduled_at,
            delay_ms=spec.delay_ms,
            cron=cron,
            tz=ZoneInfo(spec.timezone),
        )

    async def _save(self, task: Task, expected_status: TaskStatus, event: AuditEvent) -> None:
        with self.journal.recording(event):
            saved = await self.store.update_task(task, expected_status)
        if saved is None:
            if await self.store.get_task(task.id) is None:
                raise NotFound(f"task {task.id} not found")
            raise Conflict("the task changed while this request ran (a job ended?); try again")

    # --- tasks -------------------------------------------------------------------
    def _new_task(
        self, actor: User | Actor, spec: TaskSpec, now: datetime, request_id: str | None
    ) -> tuple[Task, Execution | None]:
        """A task built from `spec` and its own first job (none for recurring and
        on-demand tasks); raises ValidationFailed or Forbidden."""
        self._check(actor, spec)
        fields = {name: getattr(spec, name) for name in SPEC_FIELDS}
        run_at = None if spec.type is TaskType.ON_DEMAND else self._first_run_at(spec, now)
        if spec.type is TaskType.DELAYED:
            fields["scheduled_at"] = run_at  # DESIGN §4: a delayed task's scheduledAt is set
        task = Task(
            id=str(uuid.uuid4()),
            status=TaskStatus.ACTIVE,
            created_by=actor.id,
            org_id=as_actor(actor).org_id,
            created_at=now,
            updated_at=now,
            next_run_at=run_at,
            **fields,
        )
        if run_at is None or task.type is TaskType.RECURRING:
            return task, None
        return task, new_execution(task, run_at, own_job_id(task.id), request_id)

    async def create(
        self,
        actor: User | Actor,
        spec: TaskSpec,
        request_id: str | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> Task:
        """A new task, stored with its first job (and `claim`'s idempotency record) in one
        transaction, which without a claim it shares with the creates that came meanwhile
        (`CreateGroup`); raises ValidationFailed, Forbidden, or Replay for a used key."""
        await self.handlers.load_models()
        task, first = self._new_task(_writer(actor), spec, utcnow(), request_id)
        if self.quotas is not None:
            await self.quotas.check_tasks(task.org_id, 1)
        event = self._task_event(actor, "task.created", None, task)
        if claim is None:
            await self._creates.create(task, first, event)
            return task
        with self.journal.recording(event):
            _, claimed = await claiming(
                self.queue, lambda then: self.store.create_task(task, first, claim, then)
            )
        await self._announce([(task, first)], claimed)
        return task

    async def _write_creates(self, group: Sequence[Create]) -> None:
        """Creates without an idempotency claim, grouped (`CreateGroup`): one transaction
        with every task, first job and audit event of the group."""
        entries = [(create.task, create.first) for create in group]
        with self.journal.recording(*(create.event for create in group)):
            _, claimed = await claiming(
                self.queue, lambda then: self.store.create_tasks(entries, None, then)
            )
        await self._announce(entries, claimed)

    async def create_many(
        self,
        actor: User | Actor,
        specs: Sequence[TaskSpec],
        request_id: str | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> list[Task]:
        """`create` for many tasks at once: all or nothing; a bad item is named by its
        index (`items[3].payload`)."""
        await self.handlers.load_models()
        actor = _writer(actor)
        now = utcnow()
        entries: list[tuple[Task, Execution | None]] = []
        errors: list[FieldError] = []
        for index, spec in enumerate(specs):
            try:
                entries.append(self._new_task(actor, spec, now, request_id))
            except ValidationFailed as exc:
                errors += [FieldError(f"items[{index}].{e.field}", e.message) for e in exc.errors]
            except Forbidden as exc:
                raise Forbidden(f"items[{index}]: {exc}") from None
        if errors:
            raise ValidationFailed(errors)
        if self.quotas is not None:
            await self.quotas.check_tasks(actor.org_id, len(entries))
        ids = [task.id for task, _ in entries]
        event = self._event(
            actor, "task.batch", actor.org_id, ("task", None), {"taskIds": [None, ids]}
        )
        with self.journal.recording(event):
            tasks, claimed = await claiming(
                self.queue, lambda then: self.store.create_tasks(entries, claim, then)
            )
        await self._announce(entries, claimed)
        return tasks

    async def _announce(
        self, entries: Sequence[tuple[Task, Execution | None]], claimed: bool
    ) -> None:
        """Tell the queue of new tasks' work; their first jobs need no announcement when
        the local worker claimed in the transaction that inserted them (`claiming`).
        The work is committed: when the notice fails, the request is still answered as
        accepted (a failure would have its client create it again, and a create group
        write its creates twice), and the timer's and workers' own polls find it."""
        try:
            if any(task.type is TaskType.RECURRING for task, _ in entries):
                await self.queue.schedule_changed()
            firsts = [first for _, first in entries if first is not None]
            if firsts and not claimed:
                await self.queue.announce(firsts)
        except StoreError as exc:
            log.warning("new work committed but not announced (%s); polls will find it", exc)

    async def get(self, actor: User | Actor, task_id: str) -> Task:
        task = await self.store.get_task(task_id, org_scope(actor))
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task

    async def list(
        self, actor: User | Actor, filters: TaskFilter, limit: int, cursor: str | None
    ) -> Page[Task]:
        scoped = dataclasses.replace(filters, org_id=org_scope(actor))
        return await self.store.list_tasks(scoped, limit, cursor)

    # Reads that end in a response: the database renders each record in `shape`.
    async def get_json(self, actor: User | Actor, task_id: str, shape: Shape) -> str:
        found = await self.store.get_task_json(task_id, org_scope(actor), shape)
        if found is None:
            raise NotFound(f"task {task_id} not found")
        return found

    async def list_json(
        self, actor: User | Actor, filters: TaskFilter, shape: Shape, limit: int, cursor: str | None
    ) -> Page[str]:
        return await self.store.list_tasks_json(
            filters.in_org(org_scope(actor)), shape, limit, cursor
        )

    async def executions_json(
        self,
        actor: User | Actor,
        filters: ExecutionFilter,
        shape: Shape,
        limit: int,
        cursor: str | None,
    ) -> Page[str]:
        scoped = dataclasses.replace(filters, org_id=org_scope(actor))
        return await self.store.list_executions_json(scoped, shape, limit, cursor)

    async def execution_json(
        self, actor: User | Actor, execution_id: str, shape: Shape, history: Shape
    ) -> str:
        found = await self.store.get_execution_json(execution_id, org_scope(actor), shape, history)
        if found is None:
            raise NotFound(f"execution {execution_id} not found")
        return found

    async def dead_letter_json(
        self, actor: User | Actor, shape: Shape, limit: int, cursor: str | None
    ) -> Page[str]:
        return await self.store.list_dead_letter_json(org_scope(actor), shape, limit, cursor)

    async def update(self, actor: User | Actor, task_id: str, changes: dict[str, Any]) -> Task:
        """Apply `changes` (TaskSpec field names); the type of a task cannot change."""
        actor = _writer(actor)
        task = await self.get(actor, task_id)
        self._check_handler_access(actor, task.handler, "change")
        if "type" in changes and changes["type"] is not task.type:
            raise ValidationFailed([FieldError("type", "the type of a task cannot change")])
        current = TaskSpec(**{name: getattr(task, name) for name in SPEC_FIELDS})
        if task.type is TaskType.DELAYED:
            # Derived from delay_ms at creation, not a field users set on delayed tasks.
            current = dataclasses.replace(current, scheduled_at=None)
        spec = dataclasses.replace(current, **changes)
        await self.handlers.load_models()
        self._check(actor, spec)
        now = utcnow()
        updated = dataclasses.replace(
            task, **{n: getattr(spec, n) for n in SPEC_FIELDS}, updated_at=now
        )
        if task.type is TaskType.DELAYED:
            updated = dataclasses.replace(updated, scheduled_at=task.scheduled_at)
        timing = ("cron_expression", "timezone", "scheduled_at", "delay_ms")
        scheduled = task.type is not TaskType.ON_DEMAND
        retime = scheduled and any(getattr(spec, n) != getattr(current, n) for n in timing)
        if retime and task.status in (TaskStatus.ACTIVE, TaskStatus.PAUSED):
            if task.type is TaskType.DELAYED:
                run_at = schedule.initial_run_at(
                    spec.type,
                    now=task.created_at,
                    scheduled_at=None,
                    delay_ms=spec.delay_ms,
                    cron=None,
                    tz=ZoneInfo(spec.timezone),
                )
            else:
                run_at = self._first_run_at(spec, now)
            updated = dataclasses.replace(updated, next_run_at=run_at)
            if task.type is TaskType.DELAYED:
                updated = dataclasses.replace(updated, scheduled_at=run_at)
        await self._save(
            updated, task.status, self._task_event(actor, "task.updated", task, updated)
        )
        if updated.type is TaskType.RECURRING:
            await self.queue.schedule_changed()
        else:
            await self.queue.reschedule(updated, updated.next_run_at if retime else None)
        return updated

    async def delete(self, actor: User | Actor, task_id: str) -> None:
        task = await self.get(_writer(actor), task_id)
        event = self._event(
            actor, "task.deleted", task.org_id, ("task", task.id), {"name": [task.name, None]}
        )
        with self.journal.recording(event):
            deleted = await self.store.delete_task(task_id, org_scope(actor), utcnow())
        if not deleted:
            raise NotFound(f"task {task_id} not found")

    async def run(
        self,
        actor: User | Actor,
        task_id: str,
        runs: Sequence[RunSpec],
        request_id: str | None = None,
        claim: IdempotencyClaim | None = None,
        *,
        name_items: bool = True,
    ) -> builtins.list[Execution]:
        """Queue runs of a task, each with its own payload, priority and due time, all or
        nothing (bad items named `items[3].payload`, or just `payload` without
        `name_items`). A run whose idempotency key the task has used before stands for
        the execution it created then. A paused task cannot run (Conflict)."""
        await self.handlers.load_models()  # `plan` checks the payloads
        actor = _writer(actor)
        now = utcnow()

        def plan(task: Task | None) -> RunPlan:
            if task is None:
                raise NotFound(f"task {task_id} not found")
            if task.status is TaskStatus.PAUSED:
                raise Conflict("the task is paused; resume it first")
            self._check_handler_access(actor, task.handler, "run")
            executions = self._new_runs(task, runs, now, request_id, name_items)
            ids = [execution.id for execution in executions]
            event = self._event(
                actor, "task.run", task.org_id, ("task", task.id), {"executionIds": [None, ids]}
            )
            return RunPlan(executions, (event,))

        (result, inserted), claimed = await claiming(
            self.queue,
            lambda then: self.store.add_runs(task_id, org_scope(actor), plan, claim, then),
        )
        if inserted and not claimed:
            await self.queue.announce(inserted)
        return result

    def _new_runs(
        self,
        task: Task,
        runs: Sequence[RunSpec],
        now: datetime,
        request_id: str | None,
        name_items: bool,
    ) -> builtins.list[Execution]:
        """Runs of `task` as `runs` ask, all or none (ValidationFailed names bad items)."""
        payloads: list[Any] = []
        errors: list[FieldError] = []
        seen: set[str] = set()
        for index, spec in enumerate(runs):
            prefix = f"items[{index}]." if name_items else ""
            problems = validate_run(spec)
            payload = spec.payload if spec.has_payload else task.payload
            problems += self.handlers.validate(task.handler, payload)
            if spec.idempotency_key is not None:
                if spec.idempotency_key in seen:
                    problems.append(FieldError("idempotencyKey", "is used twice in this request"))
                seen.add(spec.idempotency_key)
            errors += [FieldError(prefix + p.field, p.message) for p in problems]
            payloads.append(payload)
        if errors:
            raise ValidationFailed(errors)
        return self._build_runs(task, runs, payloads, now, request_id)

    async def run_now(
        self, actor: User | Actor, task_id: str, request_id: str | None = None
    ) -> Execution:
        """One run of the task, now, as the task defines it."""
        (execution,) = await self.run(actor, task_id, [RunSpec()], request_id, name_items=False)
        return execution

    @staticmethod
    def _build_runs(
        task: Task,
        runs: Sequence[RunSpec],
        payloads: Sequence[Any],
        now: datetime,
        request_id: str | None,
    ) -> builtins.list[Execution]:
        """PENDING executions of `task` for valid `runs`, with `payloads`: what
        `new_execution` makes, built at once (a batch holds a thousand runs, and is
        built inside its write transaction)."""
        ids = new_execution_ids(len(runs))
        job_ids = run_job_ids(task.id, len(runs))
        created = utcnow()
        executions = []
        for execution_id, job_id, spec, payload in zip(ids, job_ids, runs, payloads, strict=True):
            run_at = now
            if spec.run_at is not None:
                run_at = spec.run_at
            elif spec.delay_ms is not None:
                run_at = now + timedelta(milliseconds=spec.delay_ms)
            priority = task.priority if spec.priority is None else spec.priority
            executions.append(
                pending_execution(
                    task,
                    execution_id,
                    job_id,
                    run_at,
                    payload,
                    priority,
                    request_id,
                    created,
                    spec.idempotency_key,
                )
            )
        return executions

    async def pause(self, actor: User | Actor, task_id: str) -> Task:
        task = await self.get(_writer(actor), task_id)
        if task.status is TaskStatus.PAUSED:
            return task
        if task.status is not TaskStatus.ACTIVE:
            raise Conflict(f"a {task.status.value} task cannot be paused")
        paused = dataclasses.replace(task, status=TaskStatus.PAUSED, updated_at=utcnow())
        await self._save(paused, task.status, self._task_event(actor, "task.paused", task, paused))
        return paused

    async def resume(self, actor: User | Actor, task_id: str) -> Task:
        """Resume a paused task; a recurring one continues from now on, without replaying
        the ticks that fell into the pause."""
        task = await self.get(_writer(actor), task_id)
        if task.status is TaskStatus.ACTIVE:
            return task
        if task.status is not TaskStatus.PAUSED:
            raise Conflict(f"a {task.status.value} task cannot be resumed")
        now = utcnow()
        next_run_at = task.next_run_at
        if task.type is TaskType.RECURRING and task.cron_expression:
            spec = schedule.parse_cron(task.cron_expression)
            next_run_at = schedule.next_run(spec, ZoneInfo(task.timezone), now)
        resumed = dataclasses.replace(
            task, status=TaskStatus.ACTIVE, updated_at=now, next_run_at=next_run_at
        )
        await self._save(
            resumed, task.status, self._task_event(actor, "task.resumed", task, resumed)
        )
        await self.queue.schedule_changed()
        self.queue.wake()
        return resumed

    # --- executions ----------------------------------------------------------------
    async def list_executions(
        self, actor: User | Actor, filters: ExecutionFilter, limit: int, cursor: str | None
    ) -> Page[Execution]:
        scoped = dataclasses.replace(filters, org_id=org_scope(actor))
        return await self.store.list_executions(scoped, limit, cursor)

    async def execution(self, actor: User | Actor, execution_id: str) -> ExecutionDetail:
        found = await self.store.get_execution(execution_id, org_scope(actor))
        if found is None:
            raise NotFound(f"execution {execution_id} not found")
        return ExecutionDetail(found, await self.store.retry_history(execution_id))

    async def cancel(self, actor: User | Actor, execution_id: str) -> Execution:
        _writer(actor)
        found = await self.store.get_execution(execution_id, org_scope(actor))
        if found is None:
            raise NotFound(f"execution {execution_id} not found")
        if found.status.is_final:
            raise Conflict(f"the execution is already {found.status.value}")
        event = self._event(
            actor,
            "execution.cancelled",
            found.org_id,
            ("execution", found.id),
            {"status": [found.status.value, ExecutionStatus.CANCELLED.value]},
        )
        with self.journal.recording(event):
            cancelled = await self.queue.cancel(execution_id, org_scope(actor))
        if cancelled is None:
            raise NotFound(f"execution {execution_id} not found")
        if cancelled.status is ExecutionStatus.CANCELLED:
            # A running job is only asked to stop: its worker reports how it ended.
            self._published(cancelled)
        return cancelled

    # --- dead letter -------------------------------------------------------------------
    async def list_dead_letter(
        self, actor: User | Actor, limit: int, cursor: str | None
    ) -> Page[DeadLetterJob]:
        return await self.store.list_dead_letter(org_scope(actor), limit, cursor)

    async def retry_dead_letter(self, actor: User | Actor, dead_letter_id: str) -> Execution:
        event = await self._dead_letter_event(_writer(actor), "dead_letter.retried", dead_letter_id)
        with self.journal.recording(event):
            execution = await self.queue.retry_dead_letter(dead_letter_id, org_scope(actor))
        if execution is None:
            raise NotFound(f"dead-letter entry {dead_letter_id} not found")
        self._published(execution)
        return execution

    def _published(self, execution: Execution) -> None:
        """Tell live views (and other nodes) of a state change made here, not by a worker."""
        self.events.publish(
            "execution",
            id=execution.id,
            taskId=execution.task_id,
            status=execution.status.value,
            ownerId=execution.owner_id,
            orgId=execution.org_id,
        )

    async def delete_dead_letter(self, actor: User | Actor, dead_letter_id: str) -> None:
        event = await self._dead_letter_event(_writer(actor), "dead_letter.deleted", dead_letter_id)
        with self.journal.recording(event):
            deleted = await self.store.delete_dead_letter(dead_letter_id, org_scope(actor))
        if not deleted:
            raise NotFound(f"dead-letter entry {dead_letter_id} not found")

    async def _dead_letter_event(
        self, actor: Actor, action: str, dead_letter_id: str
    ) -> AuditEvent:
        found = await self.store.get_dead_letter(dead_letter_id, actor.scope)
        if found is None:
            raise NotFound(f"dead-letter entry {dead_letter_id} not found")
        gone = {"taskId": [found.task_id, None]} if action == "dead_letter.deleted" else {}
        return self._event(actor, action, found.org_id, ("deadLetter", dead_letter_id), gone)
