"""kill -9 of the daemon after the changes it reports were committed and before any of
their webhook deliveries got through (the receiver is not listening yet): a daemon
restarted on the same database delivers every message, signed, to the receiver."""

from __future__ import annotations

import asyncio
import signal
import socket

import pytest
from aiohttp import web

from taskflowd.config import WebhookSettings
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.webhooks.outbox import WebhookOutbox
from taskflowd.webhooks.records import WebhookRecords
from taskflowd.webhooks.service import WebhookService
from tests.e2e.conftest import Daemons, eventually, open_jobs
from tests.integration.webhooks.receiver import Receiver, verified_by

TASKS = 4
ENV = {
    "TASKFLOW_HANDLERS__HTTP_ALLOW_PRIVATE": "true",
    "TASKFLOW_WEBHOOKS__RETRY_SCHEDULE_S": "0.5",
    "TASKFLOW_WEBHOOKS__TIMEOUT_S": "1",
    "TASKFLOW_WEBHOOKS__POLL_INTERVAL_S": "0.2",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
async def test_kill_9_before_delivery_loses_no_message(daemons: Daemons, db_url: str) -> None:
    port = free_port()
    first = await daemons.astart("--database", db_url, env=ENV)
    async with open_jobs(db_url) as jobs:
        db = jobs.store.db
        # The test writes tasks as the daemon's API does: with their task.created notices.
        jobs.store.outbox = WebhookOutbox(db)
        hooks = WebhookService(WebhookRecords(db), WebhookSettings())
        url = f"http://127.0.0.1:{port}/hook"
        endpoint, secret = await hooks.create(jobs.actor, url, ["*"], "crash test")
        tasks = [await jobs.create(f"crash-{i}", payload={"i": i}) for i in range(TASKS)]
        for task in tasks:
            await jobs.wait_status(task.id, ExecutionStatus.COMPLETED)

        async def tried() -> bool:
            found = await hooks.deliveries(jobs.actor, endpoint.id, 500, None)
            return len(found.items) == 2 * TASKS and all(d.attempts > 0 for d in found.items)

        await eventually(tried, "every delivery to have failed once against the closed port")
        assert await asyncio.to_thread(first.kill9) == -signal.SIGKILL

        receiver = Receiver()
        runner = web.AppRunner(receiver.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            second = await daemons.astart("--database", db_url, env=ENV)

            async def delivered() -> bool:
                return len({r.webhook_id for r in receiver.got}) == 2 * TASKS

            await eventually(delivered, "every message to arrive after the restart", 90)
            assert all(verified_by(secret, r) for r in receiver.got)
            kinds = sorted(r.message["type"] for r in receiver.got)
            assert kinds == ["execution.completed"] * TASKS + ["task.created"] * TASKS
            done = {r.message["data"]["taskId"] for r in receiver.of_type("execution.completed")}
            assert done == {t.id for t in tasks}

            async def recorded() -> bool:
                found = await hooks.deliveries(jobs.actor, endpoint.id, 500, None)
                return all(d.status.value == "SUCCEEDED" for d in found.items)

            await eventually(recorded, "every delivery to be recorded as succeeded")
            assert await asyncio.to_thread(second.terminate) == 0
        finally:
            receiver.release()
            await runner.cleanup()
