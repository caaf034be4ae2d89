"""`taskflowd bench --workflows` runs its chains and fan-out/fan-in runs to the end with
tiny numbers, prints every row, and leaves nothing behind in the database it measured (a
smoke test: the figures themselves are for people, not assertions)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from taskflowd.store import open_store
from tests.e2e.conftest import clean_env, run_cli

TINY = ("--workflows", "--workflow-runs", "20", "--chain-steps", "12", "--chains", "2")


def assert_table(stdout: str, store: str) -> None:
    heading, *lines = stdout.strip().splitlines()
    assert f"store {store}" in heading, stdout
    rows = [
        r"drain, 200 plain echo jobs \(jobs/s\) +[\d,]+",
        r"drain, process CPU per job \(µs\) +[\d,]+",
        r"start, 20 runs of a 10-step fan-out/fan-in \(runs/s\) +[\d,]+",
        r"drain, those 200 steps \(steps/s\) +[\d,]+",
        r"drain, process CPU per step \(µs\) +[\d,]+",
        r"steps/s as a share of plain jobs/s \(target ≥ 50%\) +\d+%",
        r"process CPU per job as a share of CPU per step +\d+%",
        r"hand-off in 2 x 12-step chain, p50 / p99 \(ms\) \(target p99 ≤ 20\) +[\d.]+ / [\d.]+",
    ]
    assert len(lines) == len(rows), stdout
    for line, row in zip(lines, rows, strict=True):
        assert re.search(row, line), (row, line)


@pytest.mark.slow
def test_workflow_bench_on_a_temporary_sqlite_database(workdir: Path) -> None:
    done = run_cli("bench", *TINY, cwd=workdir, env=clean_env(fast=False), timeout_s=300)

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, "sqlite")
    assert list(workdir.iterdir()) == [], "nothing left in the working directory"


@pytest.mark.slow
async def test_workflow_bench_on_postgresql_cleans_up(workdir: Path, pg_url: str) -> None:
    done = await asyncio.to_thread(
        run_cli, "bench", *TINY, "--database", pg_url,
        cwd=workdir, env=clean_env(fast=False), timeout_s=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, "postgresql")
    store = open_store(pg_url)
    await store.start()
    try:
        for table in ("workflows", "workflow_runs", "workflow_steps", "job_executions"):
            found = await store.db.fetch(f"SELECT COUNT(*) AS n FROM {table}")
            assert found[0]["n"] == 0, table
    finally:
        await store.stop()
