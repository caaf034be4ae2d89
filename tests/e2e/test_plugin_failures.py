"""A handler plugin that fails to load is reported, not just logged: a failing `handlers`
check on /ready, a `taskflow_handler_plugin_failures` gauge, and a worker node that
refuses to start while ACTIVE tasks need the missing handler (unless
`handlers.allow_missing`). Real plugins installed as distributions, real daemons."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import DaemonProcess, Daemons, http_get
from tests.e2e.plugins import api_call, install_plugin, sign_in, with_path

MODULE = "tf_e2e_thumbs"
WORKING = """
from taskflowd.handlers.base import HandlerSpec


async def run(payload, ctx):
    return {"thumbnail": payload}


spec = HandlerSpec("thumbs", run, lambda payload: [])
"""
BROKEN = "raise RuntimeError('libvips is not installed')\n"
REASON = "RuntimeError: libvips is not installed"


@pytest.fixture
def working(tmp_path: Path) -> dict[str, str | None]:
    root, _ = install_plugin(tmp_path / "working", WORKING, {"thumbs": "spec"}, module=MODULE)
    return with_path(root)


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, str | None]:
    root, _ = install_plugin(tmp_path / "broken", BROKEN, {"thumbs": "spec"}, module=MODULE)
    return with_path(root)


def metric_lines(daemon: DaemonProcess, name: str) -> list[str]:
    status, body = http_get(daemon.url("/metrics"))
    assert status == 200
    return [line for line in body.decode().splitlines() if line.startswith(name)]


def test_a_plugin_that_fails_to_load_is_on_ready_and_in_the_metrics(
    daemons: Daemons, broken: dict[str, str | None]
) -> None:
    daemon = daemons.start(env=broken)  # no task needs it yet: the node starts

    status, body = api_call(daemon, "GET", "/ready")
    assert status == 503, body
    check = body["checks"]["handlers"]
    assert check["ok"] is False
    assert check["reason"] == f"handler plugins failed to load: thumbs ({MODULE}:spec): {REASON}"
    assert body["checks"]["database"]["ok"] is True
    assert metric_lines(daemon, "taskflow_handler_plugin_failures{") == [
        'taskflow_handler_plugin_failures{name="thumbs"} 1.0'
    ]


def test_a_healthy_node_reports_no_plugin_failures(
    daemons: Daemons, working: dict[str, str | None]
) -> None:
    daemon = daemons.start(env=working)

    status, body = api_call(daemon, "GET", "/ready")
    assert status == 200, body
    check = body["checks"]["handlers"]
    assert (check["ok"], check["reason"]) == (True, None)
    assert metric_lines(daemon, "taskflow_handler_plugin_failures{") == []


def test_a_worker_refuses_to_start_while_active_tasks_need_a_missing_handler(
    daemons: Daemons, working: dict[str, str | None], broken: dict[str, str | None]
) -> None:
    first = daemons.start(env=working)
    body = {"name": "later", "handler": "thumbs", "scheduledAt": "2999-01-01T00:00:00Z"}
    status, task = api_call(first, "POST", "/api/v1/tasks", sign_in(first), body)
    assert status == 201, task
    assert first.terminate() == 0

    refused = daemons.start(env=broken, healthy=False)
    assert refused.wait_exit() == 1
    [line] = [ln for ln in refused.stderr.splitlines() if ln.startswith("taskflowd: cannot start")]
    assert line == (
        "taskflowd: cannot start: active tasks use handlers this node does not have: "
        f"thumbs (1 task; its plugin failed to load: {REASON}). Install or fix them "
        "(shell: handlers.shell_enabled), or set handlers.allow_missing = true to start anyway"
    )

    api_only = daemons.start("--role", "api", env=broken)  # runs no jobs: nothing to refuse
    assert api_only.terminate() == 0

    allowed = daemons.start(env={**broken, "TASKFLOW_HANDLERS__ALLOW_MISSING": "true"})
    assert api_call(allowed, "GET", "/ready")[0] == 503
    assert any(
        "active tasks use handlers this node does not have: thumbs" in r.get("msg", "")
        and r["level"] == "WARNING"
        for r in allowed.log_records()
    ), allowed.stderr
