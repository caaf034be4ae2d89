"""`taskflowd bench --workflows`: what the workflow engine (DESIGN.md §9) adds to a job.

Two figures, against the targets of the workflows issue:
- hand-off: in chains of steps where each depends on the one before, the time from a
  step's completion to its child's start (both as the database records them);
- fan-out/fan-in: runs of a 10-step workflow (start, 8 in parallel, join), all started
  with the worker stopped and then drained, in steps per second, next to the drain rate of
  as many plain `echo` jobs measured first in the same process. The ratio of the two rates
  swings with whatever else runs on the machine (±40 % on a shared one); the ratio of the
  process CPU per job to that per step follows it on an idle machine and holds still.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from taskflowd.bench_measure import next_event
from taskflowd.bench_prune import _fresh_worker
from taskflowd.domain.entities import User
from taskflowd.events import Event
from taskflowd.workflows.graph import StepSpec
from taskflowd.workflows.records import WorkflowRecords
from taskflowd.workflows.service import WorkflowService

if TYPE_CHECKING:
    from taskflowd.bench import _Bench

_FAN_OUT = 8
_RUN_BATCH = 50


def chain_steps(count: int) -> list[StepSpec]:
    return [StepSpec(f"s{i}", depends_on=(f"s{i - 1}",) if i else ()) for i in range(count)]


def fan_steps() -> list[StepSpec]:
    middle = tuple(f"part{i}" for i in range(_FAN_OUT))
    return [
        StepSpec("start"),
        *(StepSpec(key, depends_on=("start",)) for key in middle),
        StepSpec("join", depends_on=middle),
    ]


class _WorkflowBench:
    def __init__(self, bench: _Bench, user: User) -> None:
        self.bench = bench
        self.user = user
        self.service = WorkflowService(
            WorkflowRecords(bench.store.db), bench.queue, bench.handlers, bench.events
        )
        bench.queue.set_final_hook(self.service.on_final)

    async def _start_runs(self, workflow_id: str, count: int) -> set[str]:
        ids: set[str] = set()
        for start in range(0, count, _RUN_BATCH):
            batch = min(_RUN_BATCH, count - start)
            runs = await asyncio.gather(
                *(self.service.run(self.user, workflow_id) for _ in range(batch))
            )
            ids.update(run.id for run in runs)
        return ids

    async def _wait_runs(self, expected: set[str], events: asyncio.Queue[Event]) -> None:
        """Until every run in `expected` has finished; fails on a run that did not
        succeed, or when no event arrives for 120 s (see `next_event`)."""
        left = set(expected)
        while left:
            event = await next_event(events)
            data = event.data
            if event.kind == "workflow_run.finished" and data["id"] in left:
                if data["status"] != "SUCCEEDED":
                    raise RuntimeError(f"bench workflow run {data['id']} {data['status']}")
                left.discard(data["id"])

    async def hand_offs(self, steps: int, chains: int) -> list[float]:
        """Seconds from each step's completion to its child's start, over `chains` runs of
        a chain of `steps` steps run one after the other on a running worker."""
        workflow = await self.service.create(self.user, "bench chain", "", chain_steps(steps))
        gaps: list[float] = []
        for _ in range(chains):
            async with self.bench.events.subscribe() as events:
                run_ids = await self._start_runs(workflow.id, 1)
                await self._wait_runs(run_ids, events)
            rows = await self.bench.store.db.fetch(
                "SELECT step_key, started_at, completed_at FROM job_executions "
                "WHERE workflow_run_id = $1",
                next(iter(run_ids)),
            )
            t = self.bench.store.db.decode_time
            began = {r["step_key"]: t(r["started_at"]) for r in rows}
            ended = {r["step_key"]: t(r["completed_at"]) for r in rows}
            for i in range(1, steps):
                gaps.append((began[f"s{i}"] - ended[f"s{i - 1}"]).total_seconds())
        return gaps

    async def fan_drain(self, runs: int) -> dict[str, float]:
        """Start `runs` runs of the fan-out/fan-in workflow with no worker running, then
        start the worker and time until every run has finished."""
        workflow = await self.service.create(self.user, "bench fan", "", fan_steps())
        await self.bench.worker.stop()
        _fresh_worker(self.bench)
        began = time.perf_counter()
        run_ids = await self._start_runs(workflow.id, runs)
        start_s = time.perf_counter() - began
        async with self.bench.events.subscribe() as events:
            started, cpu = time.perf_counter(), time.process_time()
            await self.bench.worker.start()
            await self._wait_runs(run_ids, events)
            drain_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        steps = runs * len(fan_steps())
        return {
            "runs_per_s": runs / start_s,
            "steps_per_s": steps / drain_s,
            "cpu_us_per_step": cpu_s / steps * 1e6,
        }

    async def teardown(self) -> None:
        """Removes the bench's workflows, runs and step executions (the bench's own task
        and user go with `_Bench.teardown`)."""
        db, org = self.bench.store.db, self.user.default_org_id
        runs = "SELECT id FROM workflow_runs WHERE org_id = $1"
        await db.execute(f"DELETE FROM workflow_steps WHERE run_id IN ({runs})", org)
        await db.execute(
            "DELETE FROM retry_history WHERE execution_id IN (SELECT id FROM job_executions "
            f"WHERE workflow_run_id IN ({runs}))",
            org,
        )
        await db.execute(f"DELETE FROM job_executions WHERE workflow_run_id IN ({runs})", org)
        await db.execute("DELETE FROM workflow_runs WHERE org_id = $1", org)
        tasks = await db.fetch("SELECT task_id FROM workflows WHERE org_id = $1", org)
        await db.execute("DELETE FROM workflows WHERE org_id = $1", org)
        for task in tasks:
            await db.execute("DELETE FROM tasks WHERE id = $1", task["task_id"])


def _ms(values: Sequence[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3:.1f}"


async def workflow_rows(bench: _Bench, chain: int, chains: int, runs: int) -> list[tuple[str, str]]:
    """The rows of `taskflowd bench --workflows`."""
    user = await bench.store.get_user(bench.user.id)
    assert user is not None
    wf = _WorkflowBench(bench, user)
    try:
        steps = runs * len(fan_steps())
        plain = await bench.drain(steps)
        fan = await wf.fan_drain(runs)
        gaps = await wf.hand_offs(chain, chains)
    finally:
        await bench.worker.stop()
        await wf.teardown()
    share = fan["steps_per_s"] / plain["drain_per_s"]
    cpu_share = plain["cpu_us_per_job"] / fan["cpu_us_per_step"]
    return [
        (f"drain, {steps:,} plain echo jobs (jobs/s)", f"{plain['drain_per_s']:,.0f}"),
        ("drain, process CPU per job (µs)", f"{plain['cpu_us_per_job']:,.0f}"),
        (f"start, {runs:,} runs of a 10-step fan-out/fan-in (runs/s)", f"{fan['runs_per_s']:,.0f}"),
        (f"drain, those {steps:,} steps (steps/s)", f"{fan['steps_per_s']:,.0f}"),
        ("drain, process CPU per step (µs)", f"{fan['cpu_us_per_step']:,.0f}"),
        ("steps/s as a share of plain jobs/s (target ≥ 50%)", f"{share:.0%}"),
        ("process CPU per job as a share of CPU per step", f"{cpu_share:.0%}"),
        (
            f"hand-off in {chains} x {chain}-step chain, p50 / p99 (ms) (target p99 ≤ 20)",
            f"{_ms(gaps, 0.5)} / {_ms(gaps, 0.99)}",
        ),
    ]
