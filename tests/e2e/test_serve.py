"""`taskflowd serve` as an operator runs it: first start, restarts, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import bcrypt

from taskflowd.auth.tokens import JWT_SECRET_SETTING
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.store import open_store
from tests.e2e.conftest import Daemons, http_get, open_jobs

GENERATED = re.compile(r"created admin (?P<email>\S+) with password: (?P<password>\S+)")


def test_serve_in_empty_directory_uses_embedded_sqlite(daemons: Daemons, workdir: Path) -> None:
    assert list(workdir.iterdir()) == []

    daemon = daemons.start(fast=False)

    assert (workdir / "taskflowd.db").is_file()
    status, body = http_get(daemon.url("/health"))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert daemon.terminate() == 0


def test_serve_against_postgresql(daemons: Daemons, workdir: Path, pg_url: str) -> None:
    daemon = daemons.start("--database", pg_url)

    status, body = http_get(daemon.url("/health"))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert daemon.terminate() == 0
    assert not (workdir / "taskflowd.db").exists()


def test_serve_with_an_unreachable_database_exits_1(daemons: Daemons) -> None:
    daemon = daemons.start("--database", "postgresql://postgres@127.0.0.1:1/none", healthy=False)

    assert daemon.wait_exit() == 1
    assert "cannot start: cannot connect to PostgreSQL" in daemon.stderr
    assert "Traceback" not in daemon.stderr


async def test_a_node_that_cannot_bind_its_port_exits_1_and_unregisters(
    daemons: Daemons, db_url: str
) -> None:
    first = await daemons.astart("--database", db_url)
    assert first.port is not None
    second = daemons.start("--database", db_url, "--port", str(first.port), healthy=False)

    assert await asyncio.to_thread(second.wait_exit) == 1
    assert "cannot start" in second.stderr
    async with open_jobs(db_url) as jobs:
        assert await jobs.node_ids() == {first.node_id}, second.stderr
    assert await asyncio.to_thread(first.terminate) == 0


async def _user_hashes(url: str) -> dict[str, str]:
    store = open_store(url)
    await store.start()
    try:
        found = await store.db.fetch("SELECT email, password_hash FROM users")
        return {r["email"]: r["password_hash"] for r in found}
    finally:
        await store.stop()


async def _jwt_secret(url: str) -> str | None:
    store = open_store(url)
    await store.start()
    try:
        return await store.get_setting(JWT_SECRET_SETTING)
    finally:
        await store.stop()


async def test_first_start_prints_a_generated_admin_password_once(
    daemons: Daemons, db_url: str
) -> None:
    no_password = {"TASKFLOW_ADMIN_PASSWORD": None, "TASKFLOW_ADMIN_EMAIL": None}

    first = await daemons.astart("--database", db_url, env=no_password)
    found = [m for m in map(GENERATED.search, first.stderr.splitlines()) if m]
    assert len(found) == 1, first.stderr
    email, password = found[0]["email"], found[0]["password"]
    for record in first.log_records():
        assert password not in json.dumps(record), "the generated password reached the logs"
    hashes = await _user_hashes(db_url)
    assert list(hashes) == [email]
    assert bcrypt.checkpw(password.encode(), hashes[email].encode())
    secret = await _jwt_secret(db_url)
    assert secret
    assert await asyncio.to_thread(first.terminate) == 0

    second = await daemons.astart("--database", db_url, env=no_password)
    assert await asyncio.to_thread(second.terminate) == 0

    assert not GENERATED.search(second.stderr), second.stderr
    assert "first admin" not in second.stderr, second.stderr
    assert await _user_hashes(db_url) == hashes
    assert await _jwt_secret(db_url) == secret


async def test_sigterm_lets_a_running_job_finish_and_removes_the_node(
    daemons: Daemons, db_url: str
) -> None:
    daemon = await daemons.astart(
        "--database", db_url, env={"TASKFLOW_WORKER__SHUTDOWN_GRACE_S": "10"}
    )
    async with open_jobs(db_url) as jobs:
        assert await jobs.node_ids() == {daemon.node_id}
        task = await jobs.create("one second", "sleep", {"seconds": 1})
        await jobs.wait_status(task.id, ExecutionStatus.PROCESSING)

        assert await asyncio.to_thread(daemon.terminate) == 0

        execution = await jobs.single(task.id)
        assert execution.status is ExecutionStatus.COMPLETED, execution
        assert execution.attempts == 1
        assert execution.result == {"seconds": 1}
        assert await jobs.node_ids() == set()
        assert "handed back" not in daemon.stderr


async def test_sigterm_hands_back_what_the_grace_period_cannot_finish(
    daemons: Daemons, db_url: str
) -> None:
    # A lease that outlasts the job even when a loaded machine renews it late, and a job
    # long enough that a poll of a loaded test process does not miss it running.
    env = {"TASKFLOW_WORKER__SHUTDOWN_GRACE_S": "0", "TASKFLOW_WORKER__LEASE_S": "10"}
    first = await daemons.astart("--database", db_url, env=env)
    async with open_jobs(db_url) as jobs:
        task = await jobs.create("three seconds", "sleep", {"seconds": 3})
        await jobs.wait_status(task.id, ExecutionStatus.PROCESSING)

        assert await asyncio.to_thread(first.terminate) == 0

        handed_back = await jobs.single(task.id)
        assert handed_back.status is ExecutionStatus.PENDING, handed_back
        assert handed_back.attempts == 0
        assert handed_back.lease_owner is None
        assert await jobs.node_ids() == set()

        second = await daemons.astart("--database", db_url, env=env)
        done = await jobs.wait_status(task.id, ExecutionStatus.COMPLETED)
        assert done.attempts == 1
        assert await asyncio.to_thread(second.terminate) == 0


def test_sigint_stops_cleanly_too(daemons: Daemons) -> None:
    daemon = daemons.start()
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.terminate() == 0
