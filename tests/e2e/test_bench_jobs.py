"""`taskflowd bench --handler` runs real job bodies to the end with tiny numbers and prints
every row (a smoke test: the figures themselves are for people, not assertions)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import RedisTarget
from tests.e2e.conftest import clean_env, run_cli

TINY = ("--jobs", "200", "--delayed", "100", "--latency-jobs", "20", "--rate", "100")


def assert_table(stdout: str, handler: str) -> None:
    heading, *lines = stdout.strip().splitlines()
    assert f"job body {handler}" in heading, stdout
    rows = [
        r"enqueue rate \(jobs/s\) +[\d,]+",
        rf"drain, 200 {handler} jobs \(jobs/s\) +[\d,]+",
        r"drain, process CPU per job \(µs\) +[\d,]+",
        r"enqueue to start at 100/s, p50 / p99 \(ms\) +[\d.]+ / [\d.]+",
        r"lateness, 100 due at one instant, p50 / p99 \(ms\) +-?[\d.]+ / -?[\d.]+",
        r"peak RSS \(MB\) +[\d,]+",
    ]
    assert len(lines) == len(rows), stdout
    for line, row in zip(lines, rows, strict=True):
        assert re.search(row, line), (row, line)


@pytest.mark.slow
def test_bench_with_a_tcp_round_trip_per_job(workdir: Path) -> None:
    done = run_cli(
        "bench", *TINY, "--handler", "tcp", cwd=workdir, env=clean_env(fast=False), timeout_s=300
    )

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, "tcp")
    assert list(workdir.iterdir()) == [], "nothing left in the working directory"


@pytest.mark.slow
def test_bench_with_a_redis_incr_per_job(workdir: Path, redis_target: RedisTarget) -> None:
    done = run_cli(
        "bench", *TINY, "--handler", "redis", "--redis-url", redis_target.url,
        cwd=workdir, env=clean_env(fast=False), timeout_s=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert_table(done.stdout, "redis")
