"""The timer: turns cron ticks of recurring tasks into queued executions, and cron ticks
of scheduled workflows into runs, on time.

It sleeps until the earliest `next_run_at` (less a small lookahead), enqueues every tick
due by then, and advances each task's `next_run_at` by compare-and-set in the same
transaction; the unique (task, instant) key makes a tick's execution exist at most once
whichever node wins. A workflow's ticks are fired when due (not ahead): each starts a run
under the unique (workflow, instant) key, with the same compare-and-set of the
workflow's `next_run_at`. One-time and delayed jobs need no timer: they are queued at
creation with their `run_at`, and workers sleep until the earliest one is due.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from taskflowd.background import Outage, Supervisor
from taskflowd.config import SchedulerSettings
from taskflowd.domain import schedule
from taskflowd.domain.entities import Task, utcnow
from taskflowd.domain.jobs import new_execution, tick_job_id
from taskflowd.events import EventBus
from taskflowd.queue.base import JobQueue, TickBatch
from taskflowd.store.errors import StoreError
from taskflowd.workflows.model import Workflow
from taskflowd.workflows.service import WorkflowService

log = logging.getLogger("taskflowd.scheduler")

_BATCH = 500
_MAX_TICKS_PER_PASS = 1000
_OUTAGE_RETRY_CAP_S = 0.5


class Timer:
    def __init__(
        self,
        queue: JobQueue,
        settings: SchedulerSettings,
        events: EventBus,
        supervisor: Supervisor,
        workflows: WorkflowService | None = None,
    ) -> None:
        self.queue = queue
        self.workflows = workflows
        self.settings = settings
        self.events = events
        self._supervisor = supervisor
        self.ticks_fired = 0
        self.ticks_missed = 0

    async def start(self) -> None:
        self._supervisor.spawn("scheduler.timer", self._loop)

    async def stop(self) -> None:
        await self._supervisor.cancel("scheduler.timer")

    async def _loop(self) -> None:
        """Enqueue due ticks, then sleep until the next one or a schedule change. A store
        outage is waited out here, retried every half second at most, so the ticks that
        fell due meanwhile are enqueued as soon as the store answers (within the misfire
        grace they run one by one), rather than after a crash and the supervisor's backoff.
        """
        lookahead = timedelta(milliseconds=self.settings.lookahead_ms)
        outage = Outage(
            log,
            "cron timer: the store is unavailable (%s); retrying",
            "cron timer: the store answers again",
            cap_s=_OUTAGE_RETRY_CAP_S,
        )
        while True:
            try:
                while await self.run_due(utcnow() + lookahead) >= _BATCH:
                    pass
                next_tick = await self._next_wake(lookahead)
            except StoreError as exc:
                await asyncio.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            timeout = self.settings.sweep_interval_s
            if next_tick is not None:
                until = (next_tick - utcnow()).total_seconds()
                timeout = max(0.0, min(until, timeout))
            await self.queue.wait_for_schedule_change(timeout)

    async def _next_wake(self, lookahead: timedelta) -> datetime | None:
        """When to look again: a task's next tick less the lookahead (its execution waits
        for its instant in the queue), or a workflow's next tick (its run starts then)."""
        task_tick = await self.queue.next_tick_at()
        wakes = [] if task_tick is None else [task_tick - lookahead]
        if self.workflows is not None:
            workflow_tick = await self.workflows.next_tick_at()
            if workflow_tick is not None:
                wakes.append(workflow_tick)
        return min(wakes, default=None)

    async def run_due(self, horizon: datetime) -> int:
        """Enqueue the ticks of every task due by `horizon` and start the runs of every
        workflow due now; returns how many tasks or workflows (the more) were due."""
        tasks = await self.queue.due_tasks(horizon, _BATCH)
        for task in tasks:
            try:
                await self._fire(task, horizon)
            except (schedule.CronError, ValueError) as exc:
                log.error("task %s has an unusable schedule: %s", task.id, exc)
        if self.workflows is None:
            return len(tasks)
        flows = await self.workflows.due(utcnow(), _BATCH)
        for workflow in flows:
            try:
                await self._fire_workflow(workflow)
            except (schedule.CronError, ValueError) as exc:
                log.error("workflow %s has an unusable schedule: %s", workflow.id, exc)
        return max(len(tasks), len(flows))

    async def _fire_workflow(self, workflow: Workflow) -> None:
        assert self.workflows is not None
        if workflow.cron_expression is None or workflow.next_run_at is None:
            return
        now = utcnow()
        due = schedule.due_ticks(
            schedule.parse_cron(workflow.cron_expression),
            ZoneInfo(workflow.timezone),
            workflow.next_run_at,
            now,
            workflow.misfire_policy,
            self.settings.run_all_limit,
            misfire_grace=timedelta(seconds=self.settings.misfire_grace_s),
        )
        if await self.workflows.fire(workflow, due.ticks, due.next_run_at):
            self.ticks_fired += len(due.ticks)
            self.ticks_missed += due.missed
            for tick in due.ticks:
                lateness = max(0.0, (utcnow() - tick).total_seconds())
                self.events.publish("tick", taskId=workflow.task_id, lateness=lateness)
            if due.missed:
                self.events.publish("misfire", taskId=workflow.task_id, missed=due.missed)

    async def _fire(self, task: Task, horizon: datetime) -> None:
        if task.cron_expression is None or task.next_run_at is None:
            return
        spec = schedule.parse_cron(task.cron_expression)
        tz = ZoneInfo(task.timezone)
        now = utcnow()
        missed = 0
        if task.next_run_at <= now:
            due = schedule.due_ticks(
                spec,
                tz,
                task.next_run_at,
                now,
                task.misfire_policy,
                self.settings.run_all_limit,
                misfire_grace=timedelta(seconds=self.settings.misfire_grace_s),
            )
            ticks, following, missed = list(due.ticks), due.next_run_at, due.missed
        else:
            ticks, following = [task.next_run_at], schedule.next_run(spec, tz, task.next_run_at)
        while following <= horizon and len(ticks) < _MAX_TICKS_PER_PASS:
            ticks.append(following)
            following = schedule.next_run(spec, tz, following)
        executions = [new_execution(task, t, tick_job_id(task.id, t)) for t in ticks]
        batch = TickBatch(task, task.next_run_at, following, executions)
        if await self.queue.add_ticks(batch):
            self.ticks_fired += len(ticks)
            self.ticks_missed += missed
            for tick in ticks:
                lateness = (utcnow() - tick).total_seconds()
                self.events.publish("tick", taskId=task.id, lateness=max(0.0, lateness))
            if missed:
                self.events.publish("misfire", taskId=task.id, missed=missed)
