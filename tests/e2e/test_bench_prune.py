"""`taskflowd bench --prune N` fills, drains, prunes and prints every row with tiny numbers
(a smoke test: the figures themselves are for people, not assertions)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from taskflowd.store import open_store
from tests.e2e.conftest import clean_env, run_cli

TINY = ("--prune", "3000", "--jobs", "200")
ROWS = [
    r"fill: 3,000 old executions \(s\) +[\d.,]+",
    r"drain without pruning \(jobs/s\) +[\d,]+",
    r"drain while pruning \(jobs/s\) +[\d,]+",
    r"drain rate lost to pruning +-?[\d.]+%",
    r"pruned of 3,000 old executions +3,000",
    r"pruned while the drain ran \(share of the prune time\) +\d+%",
    r"pruning time \(s\), rows/s +[\d.,]+, [\d,]+",
    r"claim p50 / p99 / max without pruning \(ms\) +[\d.]+ / [\d.]+ / [\d.]+",
    r"claim p50 / p99 / max while pruning \(ms\) +[\d.]+ / [\d.]+ / [\d.]+",
]
SPREAD = r" +[\d.]+ / [\d.]+ / [\d.]+"
SQLITE_FILE = [
    r"prune transactions +[\d,]+",
    r"prune transaction hold p50 / p99 / max \(ms\)" + SPREAD,
    r"  while the drain ran \(ms\)" + SPREAD,
    r"  of which COMMIT p50 / p99 / max \(ms\)" + SPREAD,
    r"incremental vacuum steps, total time \(s\) +[\d,]+, [\d.,]+",
    r"incremental vacuum step hold p50 / p99 / max \(ms\)" + SPREAD,
    r"other pruner write hold p50 / p99 / max \(ms\)" + SPREAD,
    r"writer checkpoint catch-ups, hold max \(ms\) +[\d,]+, [\d.]+",
    r"claim wait for the writer p50 / p99 / max without pruning \(ms\)" + SPREAD,
    r"claim wait for the writer p50 / p99 / max while pruning \(ms\)" + SPREAD,
    r"claim wait behind the pruner p50 / p99 / max \(ms\)" + SPREAD,
    r"claims waiting > 50 ms behind the pruner +[\d,]+",
    r"SQLite file before / after pruning \(MB\) +[\d,]+ / [\d,]+",
]


def assert_table(stdout: str, rows: list[str]) -> None:
    _, *lines = stdout.strip().splitlines()
    assert len(lines) == len(rows), stdout
    for line, row in zip(lines, rows, strict=True):
        assert re.search(row, line), (row, line)


@pytest.mark.slow
def test_bench_prune_on_a_temporary_sqlite_database(workdir: Path) -> None:
    done = run_cli("bench", *TINY, cwd=workdir, env=clean_env(fast=False), timeout_s=300)

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, [*ROWS, *SQLITE_FILE])
    assert list(workdir.iterdir()) == [], "nothing left in the working directory"


@pytest.mark.slow
def test_bench_prune_on_postgresql_leaves_nothing_behind(workdir: Path, pg_url: str) -> None:
    done = run_cli(
        "bench", *TINY, "--database", pg_url, cwd=workdir, env=clean_env(fast=False),
        timeout_s=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, ROWS)

    async def executions() -> int:
        store = open_store(pg_url)
        await store.start()
        try:
            row = await store.db.fetchrow("SELECT COUNT(*) AS n FROM job_executions")
            assert row is not None
            return int(row["n"])
        finally:
            await store.stop()

    assert asyncio.run(executions()) == 0
