"""`taskflowd bench --prune N` fills, drains in pairs (plain, pruned), and prints every row
with tiny numbers (a smoke test: the figures themselves are for people, not assertions)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from taskflowd.store import open_store
from tests.e2e.conftest import clean_env, run_cli

TINY = ("--prune", "3000", "--jobs", "200", "--pairs", "2")
SPREAD = r" +[\d.]+ / [\d.]+ / [\d.]+"
PAIR = [
    r"pair {n}: drain plain / pruned \(jobs/s\), lost +[\d,]+ / [\d,]+, -?[\d.]+%",
    r"pair {n}: CPU per job plain / pruned \(µs\), added +[\d,]+ / [\d,]+, -?[\d.]+%",
    r"pair {n}: pruned rows/s while draining +[\d,]+",
]
ROWS = [
    r"fill: 3,000 old executions \(s\) +[\d.,]+",
    r"warm-up drain, not counted \(jobs/s\) +[\d,]+",
    *(row.format(n=n) for n in (1, 2) for row in PAIR),
    r"drain rate lost to pruning, median of 2 pairs +-?[\d.]+%",
    r"CPU per job added by pruning, median of 2 pairs +-?[\d.]+%",
    r"pruned rows/s with the worker idle +[\d,]+",
    r"pruned of 3,000; still pruning at each pruned drain's end +[\d,]+; (yes|no)",
    r"claim p50 / p99 / max in plain drains \(ms\)" + SPREAD,
    r"claim p50 / p99 / max in pruned drains \(ms\)" + SPREAD,
    r"claims over 50 ms in plain / pruned drains +[\d,]+ / [\d,]+",
]
SQLITE_FILE = [
    r"pruned drains' time the pruner held the writer +[\d.]+%",
    r"prune transactions +[\d,]+",
    r"prune transaction hold p50 / p99 / max \(ms\)" + SPREAD,
    r"  while the drain ran \(ms\)" + SPREAD,
    r"  of which COMMIT p50 / p99 / max \(ms\)" + SPREAD,
    r"incremental vacuum steps, total time \(s\) +[\d,]+, [\d.,]+",
    r"incremental vacuum step hold p50 / p99 / max \(ms\)" + SPREAD,
    r"other pruner write hold p50 / p99 / max \(ms\)" + SPREAD,
    r"writer checkpoint catch-ups, hold max \(ms\) +[\d,]+, [\d.]+",
    r"claim wait for the writer p50 / p99 / max in plain drains \(ms\)" + SPREAD,
    r"claim wait for the writer p50 / p99 / max in pruned drains \(ms\)" + SPREAD,
    r"claim wait behind the pruner p50 / p99 / max \(ms\)" + SPREAD,
    r"claims waiting > 50 ms behind the pruner +[\d,]+",
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

    async def left() -> tuple[int, int]:
        """Executions, and the pruner's lease (held by no node once the bench is done)."""
        store = open_store(pg_url)
        await store.start()
        try:
            counts = []
            for sql in (
                "SELECT COUNT(*) AS n FROM job_executions",
                "SELECT COUNT(*) AS n FROM leases",
            ):
                row = await store.db.fetchrow(sql)
                assert row is not None
                counts.append(int(row["n"]))
            return counts[0], counts[1]
        finally:
            await store.stop()

    assert asyncio.run(left()) == (0, 0)
