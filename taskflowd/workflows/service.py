"""Workflow operations with their rules; the API calls these.

Isolation as for tasks: an actor reads and changes the workflows and runs of the org it
acts in only (another org's look missing), a site ADMIN who names no org acts on all;
changes need the MEMBER org role (a VIEWER only reads). Step executions are jobs of the
workflow's hidden task, so the queue, the workers and the execution endpoints treat them
like any other job.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskflowd.audit.journal import Recording
from taskflowd.domain import schedule
from taskflowd.domain.entities import Task, User, utcnow
from taskflowd.domain.enums import (
    MisfirePolicy,
    Role,
    RunStatus,
    TaskStatus,
    TaskType,
    WorkflowStatus,
)
from taskflowd.domain.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from taskflowd.domain.ids import new_run_id
from taskflowd.domain.orgs import Actor, OrgRole, as_actor
from taskflowd.events import EventBus
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.base import HookOutcome, JobQueue, claiming
from taskflowd.services.quotas import QuotaBook
from taskflowd.store.base import IdempotencyClaim, Page
from taskflowd.store.db import Conn
from taskflowd.workflows.graph import StepSpec, build
from taskflowd.workflows.model import Workflow, WorkflowRun
from taskflowd.workflows.progress import Advanced
from taskflowd.workflows.records import WorkflowRecords

_AUDITED = ("name", "description", "steps", "status")
"""Workflow fields whose changes the audit trail records."""


def _scope(who: User | Actor) -> str | None:
    return as_actor(who).scope


def _writer(who: User | Actor) -> Actor:
    actor = as_actor(who)
    actor.require(OrgRole.MEMBER, "changing the org's workflows")
    return actor


@dataclass(frozen=True, slots=True)
class Schedule:
    """A workflow's optional cron schedule, as for recurring tasks (DESIGN.md §4)."""

    cron_expression: str | None = None
    timezone: str = "UTC"
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE


def next_tick(cron_expression: str | None, timezone: str, after: datetime) -> datetime | None:
    """The first fire instant of the schedule after `after` (None without one); raises
    ValidationFailed naming `cronExpression` or `timezone`."""
    if cron_expression is None:
        return None
    errors = []
    try:
        tz = schedule.validate_timezone(timezone)
    except schedule.TimezoneError as exc:
        errors.append(FieldError("timezone", str(exc)))
    try:
        spec = schedule.parse_cron(cron_expression)
    except schedule.CronError as exc:
        errors.append(FieldError("cronExpression", str(exc)))
    if errors:
        raise ValidationFailed(errors)
    return schedule.next_run(spec, tz, after)


class WorkflowService:
    def __init__(
        self,
        records: WorkflowRecords,
        queue: JobQueue,
        handlers: HandlerRegistry,
        events: EventBus | None = None,
        quotas: QuotaBook | None = None,
    ) -> None:
        self.records = records
        self.quotas = quotas
        self.queue = queue
        self.handlers = handlers
        self.events = events or EventBus()
        records.progress.plain_payload = frozenset(
            name for name in handlers.names() if not handlers.get(name).step_envelope
        )

    async def on_final(self, conn: Conn, execution_ids: Sequence[str]) -> HookOutcome:
        """The queue's final-outcome hook (see `RunProgress`). Runs that finished are
        announced only after the transaction commits, so no subscriber hears of an end
        that a rollback undid."""
        advanced = await self.records.progress.on_final(conn, execution_ids)
        after = [lambda: self._finished(advanced)] if advanced.finished else []
        return HookOutcome(advanced.spawned, after)

    async def on_reopen(self, conn: Conn, execution_id: str) -> None:
        """The queue's dead-letter retry hook (see `RunProgress.reopen`)."""
        await self.records.progress.reopen(conn, execution_id)

    def _finished(self, advanced: Advanced) -> None:
        for run in advanced.finished:
            self.events.publish(
                "workflow_run.finished",
                id=run.run_id,
                workflowId=run.workflow_id,
                ownerId=run.owner_id,
                orgId=run.org_id,
                status=run.status.value,
                durationS=(run.finished_at - run.created_at).total_seconds(),
            )

    def _graph(self, actor: User | Actor, steps: Sequence[StepSpec]) -> tuple[StepSpec, ...]:
        graph = build(steps, lambda name: name in self.handlers)
        for step in graph.steps:
            spec = self.handlers.get(step.handler)
            if spec.admin_only and actor.role is not Role.ADMIN:
                raise Forbidden(f"only admins may use the {step.handler!r} handler in a step")
        # A handler that runs on the step's own payload checks it now, not at run time.
        errors = [
            FieldError(f"steps[{i}].{e.field}", e.message)
            for i, step in enumerate(steps)
            if not self.handlers.get(step.handler).step_envelope
            for e in self.handlers.validate(
                step.handler, {} if step.payload is None else step.payload
            )
        ]
        if errors:
            raise ValidationFailed(errors)
        return tuple(steps)

    # --- workflows -----------------------------------------------------------------
    async def create(
        self,
        actor: User | Actor,
        name: str,
        description: str,
        steps: Sequence[StepSpec],
        schedule_spec: Schedule | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> Workflow:
        """A new workflow (with its schedule, if any); with `claim`, at most once per
        Idempotency-Key (a repeat raises the first request's Replay)."""
        writer = _writer(actor)
        await self.handlers.load_models()
        checked = self._graph(writer, steps)
        plan = schedule_spec or Schedule()
        if self.quotas is not None:
            await self.quotas.check_workflows(writer.org_id, 1)
        now = utcnow()
        workflow_id = str(uuid.uuid4())
        task = Task(
            id=str(uuid.uuid4()),
            name=f"workflow {name}"[:200],
            description="",
            type=TaskType.ON_DEMAND,
            status=TaskStatus.ACTIVE,
            handler="echo",
            payload=None,
            cron_expression=None,
            timezone="UTC",
            scheduled_at=None,
            delay_ms=None,
            priority=0,
            max_retries=0,
            backoff_ms=1000,
            timeout_ms=None,
            rate_limit=None,
            concurrency=None,
            misfire_policy=MisfirePolicy.RUN_ONCE,
            created_by=writer.id,
            org_id=writer.org_id,
            created_at=now,
            updated_at=now,
        )
        workflow = Workflow(
            id=workflow_id,
            name=name,
            description=description,
            steps=checked,
            status=WorkflowStatus.ACTIVE,
            task_id=task.id,
            created_by=writer.id,
            org_id=writer.org_id,
            created_at=now,
            updated_at=now,
            cron_expression=plan.cron_expression,
            timezone=plan.timezone,
            misfire_policy=plan.misfire_policy,
            next_run_at=next_tick(plan.cron_expression, plan.timezone, now),
        )
        changes = self.records.journal.diff(None, workflow, _AUDITED)
        with self._recording(writer, "workflow.created", workflow.org_id, workflow.id, changes):
            created = await self.records.create(workflow, task, claim)
        if created.cron_expression is not None:
            await self.queue.schedule_changed()
        return created

    def _recording(
        self,
        actor: User | Actor,
        action: str,
        org_id: str,
        target_id: str,
        changes: dict[str, Any] | None = None,
        target_type: str = "workflow",
    ) -> AbstractContextManager[Recording]:
        journal = self.records.journal
        event = journal.event(action, actor, org_id, (target_type, target_id), changes)
        return journal.recording(event)

    async def get(self, actor: User | Actor, workflow_id: str) -> Workflow:
        found = await self.records.get(workflow_id, _scope(actor))
        if found is None:
            raise NotFound(f"workflow {workflow_id} not found")
        return found

    async def list(self, actor: User | Actor, limit: int, cursor: str | None) -> Page[Workflow]:
        return await self.records.list_workflows(_scope(actor), limit, cursor)

    async def update(
        self, actor: User | Actor, workflow_id: str, changes: dict[str, Any]
    ) -> Workflow:
        """Apply `changes` (name, description, steps); runs already started keep the
        steps they started with."""
        current = await self.get(_writer(actor), workflow_id)
        if "steps" in changes:
            await self.handlers.load_models()
            changes["steps"] = self._graph(actor, changes["steps"])
        now = utcnow()
        updated = dataclasses.replace(current, **changes, updated_at=now)
        retime = {"cron_expression", "timezone"} & set(changes)
        if retime:
            due = next_tick(updated.cron_expression, updated.timezone, now)
            updated = dataclasses.replace(updated, next_run_at=due)
        diff = self.records.journal.diff(current, updated, _AUDITED)
        with self._recording(actor, "workflow.updated", current.org_id, current.id, diff):
            saved = await self.records.update(updated)
        if saved is None:
            raise NotFound(f"workflow {workflow_id} not found")
        if retime:
            await self.queue.schedule_changed()
        return updated

    async def _set_status(
        self, actor: User | Actor, workflow_id: str, status: WorkflowStatus
    ) -> Workflow:
        current = await self.get(_writer(actor), workflow_id)
        if current.status is status:
            return current
        now = utcnow()
        updated = dataclasses.replace(current, status=status, updated_at=now)
        if status is WorkflowStatus.ACTIVE:
            # A resumed schedule continues from now, without replaying the pause's ticks.
            due = next_tick(current.cron_expression, current.timezone, now)
            updated = dataclasses.replace(updated, next_run_at=due)
        action = "workflow.resumed" if status is WorkflowStatus.ACTIVE else "workflow.paused"
        diff = self.records.journal.diff(current, updated, ("status",))
        with self._recording(actor, action, current.org_id, current.id, diff):
            saved = await self.records.update(updated)
        if saved is None:
            raise NotFound(f"workflow {workflow_id} not found")
        if status is WorkflowStatus.ACTIVE:
            await self.queue.schedule_changed()
            self.queue.wake()
        return updated

    async def pause(self, actor: User | Actor, workflow_id: str) -> Workflow:
        """Steps of its runs wait (none starts) until the workflow is resumed."""
        return await self._set_status(actor, workflow_id, WorkflowStatus.PAUSED)

    async def resume(self, actor: User | Actor, workflow_id: str) -> Workflow:
        """Steps wait no more; a schedule continues from now on."""
        return await self._set_status(actor, workflow_id, WorkflowStatus.ACTIVE)

    async def delete(self, actor: User | Actor, workflow_id: str) -> None:
        current = await self.get(_writer(actor), workflow_id)
        gone = {"name": [current.name, None]}
        with self._recording(actor, "workflow.deleted", current.org_id, current.id, gone):
            live = await self.records.delete(workflow_id, _scope(actor), utcnow())
        if live is None:
            raise NotFound(f"workflow {workflow_id} not found")
        await self._cancel_executions(live)

    # --- schedules ---------------------------------------------------------------------
    async def due(self, horizon: datetime, limit: int) -> Sequence[Workflow]:
        """Scheduled active workflows due by `horizon` (the timer's question)."""
        return await self.records.due(horizon, limit)

    async def next_tick_at(self) -> datetime | None:
        return await self.records.next_tick_at()

    async def fire(
        self, workflow: Workflow, ticks: Sequence[datetime], following: datetime
    ) -> bool:
        """Start a run per tick and move the schedule on to `following`, unless another
        node did first (False)."""
        advanced = await self.records.fire_ticks(workflow, ticks, following, utcnow())
        if advanced is None:
            return False
        await self.queue.announce(advanced.spawned)
        self._finished(advanced)
        return True

    # --- runs ------------------------------------------------------------------------
    async def run(
        self, actor: User | Actor, workflow_id: str, claim: IdempotencyClaim | None = None
    ) -> WorkflowRun:
        """Start a run now; with `claim`, at most once per Idempotency-Key (a repeat raises
        the first request's Replay)."""
        workflow = await self.get(_writer(actor), workflow_id)
        run_id = new_run_id()
        started = {"runId": [None, run_id]}
        with self._recording(actor, "workflow.run", workflow.org_id, workflow.id, started):
            advanced, claimed = await claiming(
                self.queue,
                lambda then: self.records.start_run(
                    workflow_id, _scope(actor), run_id, utcnow(), claim, then
                ),
            )
        if advanced is None:
            raise NotFound(f"workflow {workflow_id} not found")
        if not claimed:
            await self.queue.announce(advanced.spawned)
        self._finished(advanced)
        return await self.get_run(actor, run_id)

    async def get_run(self, actor: User | Actor, run_id: str) -> WorkflowRun:
        found = await self.records.get_run(run_id, _scope(actor))
        if found is None:
            raise NotFound(f"workflow run {run_id} not found")
        return found

    async def list_runs(
        self, actor: User | Actor, workflow_id: str | None, limit: int, cursor: str | None
    ) -> Page[WorkflowRun]:
        return await self.records.list_runs(_scope(actor), workflow_id, limit, cursor)

    async def cancel_run(self, actor: User | Actor, run_id: str) -> WorkflowRun:
        """Stop the run: queued steps are cancelled at once, running ones are asked to
        stop, and no further step starts."""
        run = await self.get_run(_writer(actor), run_id)
        with self._recording(
            actor, "workflow_run.cancelled", run.org_id, run.id, target_type="workflowRun"
        ):
            outcome = await self.records.cancel_run(run_id, _scope(actor))
        if outcome is None:
            raise NotFound(f"workflow run {run_id} not found")
        live, advanced = outcome
        self._finished(advanced)
        await self._cancel_executions(live)
        return await self.get_run(actor, run_id)

    async def _cancel_executions(self, execution_ids: Sequence[str]) -> None:
        for execution_id in execution_ids:
            await self.queue.cancel(execution_id, None)

    async def retry_run(self, actor: User | Actor, run_id: str) -> WorkflowRun:
        """Re-run the FAILED steps of a FAILED run and those skipped because of them."""
        run = await self.get_run(_writer(actor), run_id)
        with self._recording(
            actor, "workflow_run.retried", run.org_id, run.id, target_type="workflowRun"
        ):
            outcome, claimed = await claiming(
                self.queue, lambda then: self.records.retry_run(run_id, _scope(actor), then)
            )
        if outcome is None:
            raise NotFound(f"workflow run {run_id} not found")
        before, advanced, after = outcome
        if before != RunStatus.FAILED.value:
            raise Conflict(f"only a FAILED run can be retried; this one is {before}")
        if not claimed:
            await self.queue.announce(advanced.spawned)
        self._finished(advanced)
        return after
