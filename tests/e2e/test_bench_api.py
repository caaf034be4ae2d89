"""`taskflowd bench --api` runs to the end with tiny numbers and prints every row (a smoke
test: the figures themselves are for people, not assertions)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from taskflowd.store import open_store
from tests.e2e.conftest import clean_env, run_cli

TINY = ("--duration", "1", "--runs", "20", "--batches", "1", "--latency-runs", "3")
ROWS = [
    r"bare aiohttp handler \(uvloop\), GET /health +[\d,]+ req/s +100\.0 %",
    r"GET /health +[\d,]+ req/s +[\d.]+ %",
    r"GET /api/v1/tasks\?limit=20, API key, 50 tasks +[\d,]+ req/s +[\d.]+ %",
    r"POST /api/v1/tasks, one-time echo task +[\d,]+ req/s +[\d.]+ %",
    r"enqueue: 20 runs, one tasks.run\(\) per request, one connection +[\d,]+ jobs/s",
    r"enqueue: 1 tasks.runs\(\) of 1,000, accepted +[\d,]+ jobs/s",
    r"enqueue: 1 tasks.runs\(\) of 1,000, accepted and drained +[\d,]+ jobs/s",
    r"create-to-start latency p50 / p99, 3 runs +[\d.]+ / [\d.]+ ms",
]


CLIENT_ROWS = ROWS[4:]
"""What `--client-only` prints: no HTTP load rows."""


def assert_table(stdout: str, generator: str) -> None:
    heading, *lines = stdout.strip().splitlines()
    assert heading.startswith("taskflowd bench --api"), stdout
    assert f"load generator {generator}" in heading
    assert len(lines) == len(ROWS), stdout
    for line, row in zip(lines, ROWS, strict=True):
        assert re.search(row, line), (row, line)
        assert "non-2xx" not in line, "the bench must not be throttled"


@pytest.mark.slow
def test_bench_api_on_a_temporary_sqlite_database(workdir: Path) -> None:
    done = run_cli("bench", "--api", *TINY, cwd=workdir, env=clean_env(fast=False), timeout_s=600)

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, "wrk" if shutil.which("wrk") else "built-in aiohttp")
    assert list(workdir.iterdir()) == [], "nothing left in the working directory"


@pytest.mark.slow
def test_bench_api_client_only_prints_the_client_rows_with_cpu_per_run(workdir: Path) -> None:
    done = run_cli(
        "bench", "--api", "--client-only", *TINY,
        cwd=workdir, env=clean_env(fast=False), timeout_s=600,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    heading, *lines = done.stdout.strip().splitlines()
    assert heading.startswith("taskflowd bench --api"), done.stdout
    assert len(lines) == len(CLIENT_ROWS), done.stdout
    for line, row in zip(lines, CLIENT_ROWS, strict=True):
        assert re.search(row, line), (row, line)
    assert re.search(r"\(CPU per run: daemon [\d,]+ µs, client [\d,]+ µs\)", lines[0]), lines[0]


@pytest.mark.slow
def test_bench_api_on_postgresql_leaves_nothing_behind(workdir: Path, pg_url: str) -> None:
    done = run_cli(
        "bench", "--api", *TINY, "--load", "builtin", "--database", pg_url,
        cwd=workdir, env=clean_env(fast=False), timeout_s=600,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, "built-in aiohttp")

    tables = ("users", "tasks", "job_executions", "api_keys", "idempotency_keys")

    async def leftovers() -> dict[str, int]:
        store = open_store(pg_url)
        await store.start()
        try:
            counts = {}
            for table in tables:
                row = await store.db.fetchrow(f"SELECT COUNT(*) AS n FROM {table}")
                assert row is not None
                counts[table] = int(row["n"])
            return counts
        finally:
            await store.stop()

    assert asyncio.run(leftovers()) == dict.fromkeys(tables, 0)


ORG_ROWS = [
    rf"{request}, {phase}{per} +[\d,]+ {unit}/{per_unit} +[\d.]+ % +\({spread}: [\d. /]+ %\)"
    for request, unit in (
        (r"GET /api/v1/tasks\?limit=20, API key, 50 tasks", "req"),
        (r"POST /api/v1/tasks, one-time echo task", "req"),
        (r"enqueue: 1 tasks.runs\(\) of 1,000, accepted and drained", "jobs"),
    )
    for per, per_unit in (("", "s"), (", per daemon CPU second", "CPU s"))
    for phase, spread in (("org alone", "alone"), ("3 other orgs", "rounds"))
]


def _assert_org_rows(done: subprocess.CompletedProcess[str]) -> None:
    """The run succeeded and printed each org row, in order, after the plain rows."""
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()[1 + len(ROWS) :]
    assert len(lines) == len(ORG_ROWS), done.stdout
    for line, row in zip(lines, ORG_ROWS, strict=True):
        assert re.search(row, line), (row, line)


@pytest.mark.slow
def test_bench_api_with_other_orgs_on_postgresql_leaves_nothing_behind(
    workdir: Path, pg_url: str
) -> None:
    done = run_cli(
        "bench", "--api", *TINY, "--orgs", "3", "--load", "builtin", "--database", pg_url,
        cwd=workdir, env=clean_env(fast=False), timeout_s=600,
    )  # fmt: skip

    _assert_org_rows(done)

    async def leftovers() -> dict[str, int]:
        store = open_store(pg_url)
        await store.start()
        try:
            counts = {}
            for table in ("users", "org_members", "tasks", "job_executions"):
                row = await store.db.fetchrow(f"SELECT COUNT(*) AS n FROM {table}")
                assert row is not None
                counts[table] = int(row["n"])
            return counts
        finally:
            await store.stop()

    assert asyncio.run(leftovers()) == dict.fromkeys(
        ("users", "org_members", "tasks", "job_executions"), 0
    )


@pytest.mark.slow
def test_bench_api_with_other_orgs_on_sqlite(workdir: Path) -> None:
    """The bench's own process writes the other orgs into the node's SQLite database
    while the node runs."""
    done = run_cli(
        "bench", "--api", *TINY, "--orgs", "3", "--org-rounds", "1",
        cwd=workdir, env=clean_env(fast=False), timeout_s=600,
    )  # fmt: skip

    _assert_org_rows(done)
