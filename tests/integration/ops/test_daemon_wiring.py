"""The daemon's composition root wires metrics and systemd: READY=1 once serving, watchdog
pings while it runs, STOPPING=1 when it shuts down, and job metrics from its own events."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from taskflowd import daemon as daemon_module
from taskflowd.api.middleware import front_middleware
from taskflowd.api.openapi import REGISTRY_KEY, ApiRegistry
from taskflowd.api.parts import NodeParts
from taskflowd.api.routes import meta, ops
from taskflowd.config import AuthSettings, HttpSettings, Settings, WorkerSettings
from taskflowd.daemon import Daemon
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.metrics import http_report
from taskflowd.store.base import ExecutionFilter
from taskflowd.webhooks.sender import Sender
from tests.integration.engine.harness import spec
from tests.integration.queue.polling import eventually
from tests.unit.ops.notify import listening


def ops_app(node: NodeParts) -> web.Application:
    """The ops part of the daemon's app, mounted as the composition root mounts it."""
    app = web.Application(middlewares=[front_middleware((http_report(node.metrics),))])
    registry = ApiRegistry(app, "taskflowd", "test")
    app[REGISTRY_KEY] = registry
    meta.install(registry)
    context = ops.OpsContext.build(
        node.store,
        node.queue,
        node.metrics,
        metrics_token=node.settings.metrics.token,
        node_ttl_s=node.settings.cluster.node_ttl_s,
    )
    ops.mount(context)(registry)
    return app


# HttpServer still passes shutdown_timeout to TCPSite, deprecated by aiohttp 3.14.
async def test_daemon_reports_to_systemd_and_counts_its_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'daemon.db'}",
        admin_email="admin@example.com",
        admin_password="a long enough admin password",
        http=HttpSettings(host="127.0.0.1", port=0),
        auth=dataclasses.replace(AuthSettings(), bcrypt_rounds=4),
        worker=dataclasses.replace(WorkerSettings(), safety_poll_s=0.2),
    )
    with listening() as listener:
        monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        daemon = Daemon.build(settings, app_factory=ops_app)
        assert daemon.metrics is not None and daemon.notifier is not None
        await daemon.start()
        try:
            ready = await listener.wait_for("READY=1")
            assert f"STATUS=serving on 127.0.0.1:{daemon.http.port}, 0 running jobs" in ready[0]
            await listener.wait_for("WATCHDOG=1", count=2)

            admin = await daemon.store.get_user_by_email("admin@example.com")
            assert admin is not None
            task = await daemon.tasks.create(admin, spec())
            metrics = daemon.metrics

            async def counted() -> bool:
                page = await daemon.store.list_executions(ExecutionFilter(task_id=task.id), 10)
                done = [e for e in page.items if e.status is ExecutionStatus.COMPLETED]
                value = metrics.registry.get_sample_value(
                    "taskflow_jobs_total", {"outcome": "COMPLETED", "handler": "echo"}
                )
                return bool(done) and value == 1.0

            await eventually(counted, "the daemon's metrics to count its completed job")
            base = f"http://127.0.0.1:{daemon.http.port}"
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/ready") as response:
                    assert response.status == 200
                async with session.get(f"{base}/metrics") as response:
                    text = await response.text()
            assert 'taskflow_jobs_total{handler="echo",outcome="COMPLETED"} 1.0' in text
            assert 'taskflow_http_requests_total{method="GET",route="/ready",status="200"}' in text
        finally:
            await daemon.stop()
        stopping = await listener.wait_for("STOPPING=1")
        assert stopping == ["STOPPING=1\nSTATUS=shutting down"]


async def test_a_component_that_hangs_at_stop_does_not_hold_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutdown gives each component the worker's grace and a margin, then goes on with
    the rest: a node never hangs on SIGTERM because one part would not stop."""

    stop = Sender.stop

    async def never(self: Sender) -> None:
        await stop(self)  # its resources are released; then it hangs
        await asyncio.Event().wait()

    monkeypatch.setattr(Sender, "stop", never)
    monkeypatch.setattr(daemon_module, "STOP_MARGIN_S", 0.5)
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'daemon.db'}",
        admin_email="admin@example.com",
        admin_password="a long enough admin password",
        http=HttpSettings(host="127.0.0.1", port=0),
        auth=dataclasses.replace(AuthSettings(), bcrypt_rounds=4),
        worker=dataclasses.replace(WorkerSettings(), shutdown_grace_s=0),
    )
    daemon = Daemon.build(settings, app_factory=ops_app)
    await daemon.start()
    port = daemon.http.port
    await asyncio.wait_for(daemon.stop(), 20)
    assert "webhooks did not stop within 0.5 s" in caplog.text
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/health")
