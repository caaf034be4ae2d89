"""The cron timer rides out a PostgreSQL outage (issue 12, item 7): it waits for the
database instead of crashing into the supervisor's backoff, and when the database
returns within the misfire grace, every tick that fell due meanwhile runs, each once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import pytest

from taskflowd.domain.entities import Execution, utcnow
from taskflowd.domain.enums import ExecutionStatus, TaskType
from tests.e2e.conftest import Daemons, eventually, open_jobs
from tests.integration.ops.private_pg import PrivatePostgres

OUTAGE_S = 6.0
GRACE_S = 20.0  # the outage, the server's restart and the timer's return fit well within
EVERY_SECOND = "* * * * * *"


def instants(executions: list[Execution]) -> list[datetime]:
    return sorted(e.scheduled_for for e in executions)


@pytest.mark.slow
async def test_ticks_due_during_an_outage_run_once_the_database_returns(
    daemons: Daemons, private_pg: PrivatePostgres
) -> None:
    url = private_pg.url
    daemon = await daemons.astart(
        "--database", url, env={"TASKFLOW_SCHEDULER__MISFIRE_GRACE_S": str(GRACE_S)}
    )
    async with open_jobs(url) as jobs:
        task = await jobs.create("every second", type=TaskType.RECURRING, cron=EVERY_SECOND)

        async def ticking() -> bool:
            done = [e for e in await jobs.executions(task.id) if e.status.is_final]
            return len(done) >= 2

        await eventually(ticking, "the first ticks to run")

    await private_pg.stop()
    stopped_at = utcnow()
    await asyncio.sleep(OUTAGE_S)
    await private_pg.start()
    back_at = utcnow()

    cutoff = back_at + timedelta(seconds=2)
    async with open_jobs(url) as jobs:

        async def caught_up() -> list[Execution] | None:
            found = await jobs.executions(task.id)
            upto = [e for e in found if e.scheduled_for <= cutoff]
            later = len(upto) < len(found)
            finished = all(e.status is ExecutionStatus.COMPLETED for e in upto)
            return upto if later and finished else None

        executions = await eventually(caught_up, "the ticks of the outage to run")

    times = instants(executions)
    assert Counter(times).most_common(1)[0][1] == 1, "a tick ran twice"
    # One execution for every second from the first tick to the cutoff: none folded away.
    assert len(times) == int((times[-1] - times[0]).total_seconds()) + 1, times
    assert times[0] < stopped_at - timedelta(seconds=1) and times[-1] > back_at
    assert daemon.running
    records = daemon.log_records()
    assert not [r for r in records if "crashed" in r.get("msg", "")], daemon.stderr
    waits = [r["msg"] for r in records if r.get("msg", "").startswith("cron timer:")]
    assert waits[0].startswith("cron timer: the store is unavailable"), waits
    assert waits[-1] == "cron timer: the store answers again", waits
