"""`taskflowd bench --webhooks` and `taskflowd bench --audit N` run to the end with tiny
numbers and print every row (a smoke test: the figures themselves are for people)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from taskflowd.store import open_store
from tests.e2e.conftest import clean_env, run_cli


def assert_rows(stdout: str, heading: str, rows: list[str]) -> None:
    first, *lines = stdout.strip().splitlines()
    assert heading in first, stdout
    assert len(lines) == len(rows), stdout
    for line, row in zip(lines, rows, strict=True):
        assert re.search(row, line), (row, line)


@pytest.mark.slow
def test_bench_webhooks_measures_latency_and_fan_out(workdir: Path) -> None:
    done = run_cli(
        "bench", "--webhooks", "--jobs", "100", "--latency-jobs", "10", "--rate", "50",
        cwd=workdir, env=clean_env(fast=False), timeout_s=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert_rows(
        done.stdout,
        "store sqlite",
        [
            r"delivery start after completedAt at 50/s, p50 / p99 \(ms\) +[\d.]+ / [\d.]+",
            r"drain, 100 jobs, no endpoint \(jobs/s\) +[\d,]+",
            r"drain, 10 endpoints, to last completion \(jobs/s\) +[\d,]+",
            r"drain, 10 endpoints, to last delivery recorded \(jobs/s\) +[\d,]+",
            r"deliveries received \(deliveries/s\) +[\d,]+",
            r"drain rate lost to webhooks +-?[\d.]+%",
            r"process CPU per job, none / 10 endpoints \(µs\) +[\d,]+ / [\d,]+",
            r"CPU share of webhooks +-?[\d.]+%",
            r"CPU of 10 deliveries per job at 1,000 jobs/s \(cores\) +-?[\d.]+",
            r"sender: in flight / per endpoint / poll \(s\) +\d+ / \d+ / [\d.]+",
        ],
    )
    assert list(workdir.iterdir()) == [], "nothing left in the working directory"


def audit_rows(backend: str) -> list[str]:
    return [
        rf"{backend}: append 1,200 events \(events/s\) +[\d,]+",
        rf"{backend}: append, process CPU per event \(µs\) +[\d,.]+",
        rf"{backend}: audit verify of 1,200 events \(s\) +[\d,.]+",
        rf"{backend}: audit verify \(events/s\) +[\d,]+",
        rf"{backend}: audit verify, process CPU \(s\) +[\d,.]+",
        rf"{backend}: audit verify of 1,000,000 at this rate \(s\) +[\d,.]+",
    ]


def test_bench_audit_verifies_on_sqlite_and_postgresql_without_touching_the_database(
    workdir: Path, pg_url: str
) -> None:
    done = run_cli(
        "bench", "--audit", "1200", "--database", pg_url,
        cwd=workdir, env=clean_env(fast=False), timeout_s=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert_rows(done.stdout, "1,200 events", audit_rows("sqlite") + audit_rows("postgresql"))

    async def audited() -> int:
        store = open_store(pg_url)
        await store.start()
        try:
            row = await store.db.fetchrow("SELECT COUNT(*) AS n FROM audit_events")
            assert row is not None
            return int(row["n"])
        finally:
            await store.stop()

    assert asyncio.run(audited()) == 0, "the configured database's audit trail is untouched"
