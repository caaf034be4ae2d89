"""The client commands (`taskflowd task …`, `taskflowd runs wait`) against a real daemon
process, with an API key created through the API; and `taskflowd serve` in a shell that
has the client's variables set."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskflowd.client import Client
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    DaemonProcess,
    Daemons,
    clean_env,
    run_cli,
)


@pytest.fixture
def daemon(daemons: Daemons) -> DaemonProcess:
    return daemons.start()


@pytest.fixture
def api_key(daemon: DaemonProcess) -> Iterator[str]:
    with Client(daemon.url("")) as client:
        client.auth.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        yield client.api_keys.create("cli tests").key


def cli_env(daemon: DaemonProcess, api_key: str) -> dict[str, str]:
    return clean_env({"TASKFLOW_URL": daemon.url(""), "TASKFLOW_API_KEY": api_key}, fast=False)


class Cli:
    """`taskflowd …` with the server and key in the environment."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=self.workdir, env=self.env)

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def cli(workdir: Path, daemon: DaemonProcess, api_key: str) -> Cli:
    return Cli(workdir, cli_env(daemon, api_key))


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskflowd: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert done.stdout == ""


def test_task_commands_end_to_end(cli: Cli) -> None:
    task = cli.json("task", "create", "resize", "--type", "ON_DEMAND", "--payload", '{"w": 1}')
    assert (task["name"], task["type"], task["status"]) == ("resize", "ON_DEMAND", "ACTIVE")
    assert task["payload"] == {"w": 1}

    table = cli("task", "list")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "TYPE", "STATUS"]
    assert [row.split()[:4] for row in rows] == [[task["id"], "resize", "ON_DEMAND", "ACTIVE"]]
    listed = cli.json("task", "list", "--type", "ON_DEMAND")
    assert [t["id"] for t in listed["items"]] == [task["id"]]

    waited = cli("task", "run", task["id"], "--payload", "[1, 2]", "--wait")
    assert waited.returncode == 0, waited.stderr
    assert "COMPLETED" in waited.stdout and "[1,2]" in waited.stdout

    queued = cli.json("task", "run", task["id"])
    assert queued["status"] == "PENDING" and queued["taskId"] == task["id"]
    done = cli.json("runs", "wait", queued["id"])
    assert (done["id"], done["status"], done["result"]) == (queued["id"], "COMPLETED", {"w": 1})

    assert cli.json("task", "pause", task["id"])["status"] == "PAUSED"
    one_line_error(cli("task", "run", task["id"]), 1, "409", "conflict", "paused")
    resumed = cli("task", "resume", task["id"])
    assert resumed.returncode == 0 and "ACTIVE" in resumed.stdout

    assert cli.json("task", "delete", task["id"]) == {"id": task["id"], "deleted": True}
    one_line_error(cli("task", "delete", task["id"]), 1, "404", "not_found")
    assert cli.json("task", "list")["items"] == []


def test_outcomes_and_errors_have_their_exit_codes(
    cli: Cli, workdir: Path, daemon: DaemonProcess, api_key: str
) -> None:
    failing = cli.json(
        "task", "create", "boom", "--type", "ON_DEMAND", "--handler", "fail",
        "--payload", '{"message": "kaput"}', "--max-retries", "0",
    )  # fmt: skip
    failed = cli("task", "run", failing["id"], "--wait")
    assert failed.returncode == 3, failed.stderr
    assert "FAILED" in failed.stdout and "kaput" in failed.stdout

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    pending = cli.json("task", "run", failing["id"], "--at", later)
    timed_out = cli("runs", "wait", pending["id"], "--timeout", "0.2")
    assert timed_out.returncode == 4
    assert "still PENDING" in timed_out.stderr and pending["id"] in timed_out.stdout

    bad = cli("task", "create", "x", "--priority", "99")
    one_line_error(bad, 1, "422", "validation_failed", "priority")
    one_line_error(cli("runs", "wait", "no-such-run"), 1, "404")

    flags_win = run_cli(
        "task", "list", "--url", daemon.url(""), "--api-key", "tfk_not-a-key",
        cwd=workdir, env=cli.env,
    )  # fmt: skip
    one_line_error(flags_win, 1, "401", "invalid_token")
    nowhere = clean_env(
        {"TASKFLOW_URL": "http://127.0.0.1:1", "TASKFLOW_API_KEY": api_key}, fast=False
    )
    one_line_error(run_cli("task", "list", cwd=workdir, env=nowhere), 1, "cannot reach", "refused")
    no_key = clean_env({"TASKFLOW_URL": daemon.url("")}, fast=False)
    one_line_error(run_cli("task", "list", cwd=workdir, env=no_key), 2, "TASKFLOW_API_KEY")
    usage = cli("task", "create", "x", "--payload", "{not json")
    assert usage.returncode == 2 and "--payload" in usage.stderr


def test_serve_starts_with_the_client_variables_set(daemons: Daemons) -> None:
    daemon = daemons.start(
        env={"TASKFLOW_URL": "http://example.invalid:1", "TASKFLOW_API_KEY": "tfk_whatever"}
    )
    with Client(daemon.url("")) as client:
        assert client.health().status == "ok"
    assert daemon.terminate() == 0
