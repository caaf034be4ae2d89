"""`taskflowd bench --api`: the HTTP request path measured against a bare aiohttp handler
in the same run, and what a program gets from `taskflowd.client`.

A daemon runs as a subprocess on a temporary SQLite database (or on the configured
PostgreSQL database, under a bench user whose rows are deleted afterwards), with its
per-user limits raised: the bench is a deliberate flood. The reference, a bare aiohttp
handler on uvloop, runs in a process of its own. HTTP load comes from wrk when it is
installed (else a built-in aiohttp load generator in separate processes), one request
kind at a time (`--client-only` leaves that out). Then the client enqueues runs one per
request over one connection (with the CPU time each run cost the daemon, accepting and
running it, and the client), and in batches of 1,000 (accepted, and drained by the
node's workers), and measures create-to-start latency on the idle node: from sending a
run to its `startedAt`.

With `--orgs N`, what org scoping costs as the number of orgs grows: the org-scoped
requests (list and create tasks) and the drain of batched runs are measured with the
bench user's org alone, then `--org-rounds` times with N other orgs full of tasks,
finished executions and queued jobs and alone again once those are deleted. Each crowded
measure is a share of the mean of the two alone beside it (the machine's drift over the
run cancels out), averaged over the rounds; the alone measures' own spread shows how far
one measure can be trusted. The same figures per second of the daemon's CPU time (user
and system, every thread) follow: on a shared machine, other processes take the CPU
from the daemon at random, which changes its rate far more than its CPU time per
request. (On PostgreSQL the database server's own work is not in that CPU time.)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from taskflowd.client import AsyncClient, ExecutionStatus, NewRun, NewTask, TaskType
from taskflowd.config import Settings
from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.enums import Role

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 600.0
DRAIN_POLL_S = 0.05
LATENCY_GAP_S = 0.02
"""Pause between the runs of the latency phase, so each meets an idle node."""
BATCH = 1000
LISTED_TASKS = 50
ORG_TASKS = 20
ORG_FINISHED_EXECUTIONS = 2000
ORG_PENDING_EXECUTIONS = 100
"""What each of the `--orgs` other organizations holds (its queued jobs are due tomorrow)."""
# The bench floods the node on purpose; nothing of it must be throttled.
BENCH_LIMITS = {
    "TASKFLOW_AUTH__API_LIMIT_PER_MIN": "100000000",
    "TASKFLOW_AUTH__API_MAX_IN_FLIGHT": "100000",
    "TASKFLOW_AUTH__JOB_LIMIT_PER_MIN": "100000000",
}
_SERVING = re.compile(r"serving on [^\s:]+:(\d+)")
_LISTENING = re.compile(r"listening on (\d+)")
_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_OTHER = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class BenchError(Exception):
    """The bench could not run (a process did not start, a request failed)."""


@dataclass(frozen=True)
class Load:
    """What a load generator measured for one request kind."""

    per_s: float
    other: int
    """Answers that were not 2xx (a flood must not be throttled: these spoil a figure)."""
    errors: int


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, and its share of the bare handler's."""

    label: str
    value: float | None
    unit: str
    share: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Target:
    label: str
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None


class _Process:
    """A helper subprocess whose output goes to a file, read for its start-up line."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_text(errors="replace"))
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{self.proc.args!r} did not start:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


# --- load generators ------------------------------------------------------------
def _wrk(target: Target, args: argparse.Namespace, workdir: Path) -> Load:
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    for name, value in target.headers:
        argv += ["-H", f"{name}: {value}"]
    if target.method != "GET":
        script = workdir / "request.lua"
        lines = [f'wrk.method = "{target.method}"']
        if target.body is not None:
            lines.append(f"wrk.body = [[{target.body}]]")
        script.write_text("\n".join(lines) + "\n")
        argv += ["-s", str(script)]
    done = subprocess.run(
        [*argv, target.url], capture_output=True, text=True, check=False, timeout=args.duration + 60
    )
    rate = _WRK_RATE.search(done.stdout)
    if done.returncode != 0 or rate is None:
        raise BenchError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    other = _WRK_OTHER.search(done.stdout)
    errors = _WRK_ERRORS.search(done.stdout)
    return Load(
        float(rate[1]),
        int(other[1]) if other else 0,
        sum(int(n) for n in errors.groups()) if errors else 0,
    )


def _builtin(target: Target, args: argparse.Namespace, workdir: Path) -> Load:
    """One generator process per `--threads`, sharing the connections between them and
    started together once every one is ready."""
    shares = [args.connections // args.threads] * args.threads
    shares[0] += args.connections - sum(shares)
    procs = []
    for share in (s for s in shares if s > 0):
        argv = _python("taskflowd.bench_http", "load", target.url, "--method", target.method)
        argv += ["--connections", str(share), "--duration", str(args.duration)]
        for name, value in target.headers:
            argv += ["--header", f"{name}: {value}"]
        if target.body is not None:
            argv += ["--body", target.body]
        procs.append(
            subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                _, err = proc.communicate(timeout=STOP_TIMEOUT_S)
                raise BenchError(
                    f"the load generator did not start: {err.decode(errors='replace')}"
                )
        results = [proc.communicate(b"go\n", timeout=args.duration + 60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    rate, other, errors = 0.0, 0, 0
    for proc, (out, err) in zip(procs, results, strict=True):
        if proc.returncode != 0:
            raise BenchError(f"the load generator failed: {err.decode(errors='replace')}")
        result = orjson.loads(out)
        rate += (result["ok"] + result["other"]) / result["seconds"]
        other += int(result["other"])
        errors += int(result["errors"])
    return Load(rate, other, errors)


def choose_load(choice: str) -> str:
    """ "wrk" or "builtin" for `--load` (auto: wrk when it is on the PATH)."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "builtin"
    if choice == "wrk" and not shutil.which("wrk"):
        raise BenchError("wrk is not installed (apt-get install wrk), use --load builtin")
    return choice


# --- the node and its bench user ------------------------------------------------
@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    password: str


async def _create_account(database: str) -> Account:
    """A bench user, written straight into the database before the node starts."""
    from taskflowd.auth.passwords import PasswordHasher
    from taskflowd.store import open_store
    from taskflowd.store.errors import StoreError

    password = secrets.token_urlsafe(18)
    email = f"bench-{uuid.uuid4().hex[:10]}@bench.invalid"
    hasher = PasswordHasher(rounds=4, threads=1)
    store = open_store(database)
    try:
        await store.start()
    except StoreError as exc:
        hasher.close()
        raise BenchError(f"cannot open the database: {exc}") from exc
    try:
        now = utcnow()
        user = User(
            str(uuid.uuid4()), email, await hasher.hash(password), "bench", "", Role.USER,
            True, 0, now, now,
        )  # fmt: skip
        await store.create_user(user)
    finally:
        hasher.close()
        await store.stop()
    return Account(user.id, email, password)


async def _forget_account(database: str, account: Account) -> None:
    """Delete everything the bench user made (on a database that outlives the bench)."""
    from taskflowd.store import open_store

    store = open_store(database)
    await store.start()
    mine = "SELECT id FROM tasks WHERE created_by = $1"
    runs = f"SELECT id FROM job_executions WHERE task_id IN ({mine})"
    try:
        for statement in (
            f"DELETE FROM retry_history WHERE execution_id IN ({runs})",
            f"DELETE FROM dead_letter_jobs WHERE task_id IN ({mine})",
            f"DELETE FROM job_executions WHERE task_id IN ({mine})",
            "DELETE FROM tasks WHERE created_by = $1",
            "DELETE FROM api_keys WHERE user_id = $1",
            "DELETE FROM refresh_tokens WHERE user_id = $1",
            "DELETE FROM idempotency_keys WHERE user_id = $1",
            "DELETE FROM org_members WHERE user_id = $1",
            "DELETE FROM orgs WHERE id IN (SELECT default_org_id FROM users WHERE id = $1)",
            "DELETE FROM users WHERE id = $1",
        ):
            await store.db.execute(statement, account.user_id)
    finally:
        await store.stop()


def _daemon_argv(settings: Settings, args: argparse.Namespace, database: str) -> list[str]:
    argv = _python("taskflowd", "serve", "--host", "127.0.0.1", "--port", "0")
    argv += ["--database", database, "--queue", settings.queue]
    if getattr(args, "config", None):
        argv += ["--config", args.config]
    return argv


def _daemon_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, **BENCH_LIMITS}
    env["TASKFLOW_WORKER__CONCURRENCY"] = str(settings.worker.concurrency)
    return env


# --- what a program gets from the client ----------------------------------------
def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drained(client: AsyncClient, task_id: str | None = None) -> None:
    """Wait until none of the bench user's runs (of `task_id`) waits or runs."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        busy = False
        for status in (ExecutionStatus.PENDING, ExecutionStatus.PROCESSING):
            page = await client.executions.list(task_id=task_id, status=status, limit=1)
            busy = busy or bool(page.items)
        if not busy:
            return
        await asyncio.sleep(DRAIN_POLL_S)
    raise BenchError(f"runs were not drained within {DRAIN_TIMEOUT_S:g} s")


async def _on_demand(client: AsyncClient, name: str) -> str:
    task = await client.tasks.create(NewTask(name, type=TaskType.ON_DEMAND, max_retries=0))
    return task.id


@dataclass(frozen=True)
class _OneByOne:
    """Runs sent one `tasks.run` per request: their rate, and the CPU time each cost the
    daemon (accepting and running it) and the client (sending it), in microseconds."""

    per_s: float
    daemon_us: float
    client_us: float


async def _one_by_one(base_url: str, api_key: str, count: int, daemon_pid: int) -> _OneByOne:
    """Runs one `tasks.run` per request over one keep-alive connection, until drained."""
    async with AsyncClient(base_url, api_key=api_key, connections=1) as client:
        task_id = await _on_demand(client, "bench-run")
        daemon_cpu, client_cpu = _cpu_s(daemon_pid), time.process_time()
        started = time.perf_counter()
        for i in range(count):
            await client.tasks.run(task_id, {"i": i})
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        await _drained(client, task_id)
        daemon_cpu = _cpu_s(daemon_pid) - daemon_cpu
    return _OneByOne(count / elapsed, daemon_cpu / count * 1e6, client_cpu / count * 1e6)


async def _batched(client: AsyncClient, batches: int) -> tuple[float, float]:
    """(accepted, accepted and drained) runs per second, in `POST …/runs` of 1,000."""
    task_id = await _on_demand(client, "bench-runs")
    started = time.perf_counter()
    for b in range(batches):
        await client.tasks.runs(task_id, [NewRun({"b": b, "i": i}) for i in range(BATCH)])
    accepted = time.perf_counter() - started
    await _drained(client, task_id)
    drained = time.perf_counter() - started
    total = batches * BATCH
    return total / accepted, total / drained


async def _create_to_start(client: AsyncClient, count: int) -> list[float]:
    """Milliseconds from sending each run to its `startedAt`, one run at a time."""
    task_id = await _on_demand(client, "bench-latency")
    sent: dict[str, float] = {}
    for i in range(count):
        at = time.time()
        execution = await client.tasks.run(task_id, {"i": i})
        sent[execution.id] = at
        await asyncio.sleep(LATENCY_GAP_S)
    await _drained(client, task_id)
    latencies = []
    async for execution in client.executions.iter(task_id=task_id):
        if execution.id in sent and execution.started_at is not None:
            latencies.append((execution.started_at.timestamp() - sent[execution.id]) * 1e3)
    return latencies


@dataclass(frozen=True)
class Session:
    api_key: str
    listed: int


async def _prepare(base_url: str, account: Account) -> Session:
    """An API key for the bench user and the tasks the list request reads."""
    async with AsyncClient(base_url) as client:
        await client.auth.login(account.email, account.password)
        key = await client.api_keys.create("taskflowd bench")
        listed = await client.tasks.create_batch(
            [NewTask(f"bench-list-{i}", type=TaskType.ON_DEMAND) for i in range(LISTED_TASKS)]
        )
    return Session(key.key, len(listed))


async def _client_rows(
    base_url: str, api_key: str, args: argparse.Namespace, daemon_pid: int
) -> list[Row]:
    rows: list[Row] = []
    async with AsyncClient(base_url, api_key=api_key) as client:
        await _drained(client)  # the tasks POST /api/v1/tasks created run first
        one = await _one_by_one(base_url, api_key, args.runs, daemon_pid)
        label = f"enqueue: {args.runs:,} runs, one tasks.run() per request, one connection"
        note = f"(CPU per run: daemon {one.daemon_us:,.0f} µs, client {one.client_us:,.0f} µs)"
        rows.append(Row(label, one.per_s, "jobs/s", note=note))
        accepted, drained = await _batched(client, args.batches)
        label = f"enqueue: {args.batches} tasks.runs() of {BATCH:,}"
        rows.append(Row(f"{label}, accepted", accepted, "jobs/s"))
        rows.append(Row(f"{label}, accepted and drained", drained, "jobs/s"))
        latencies = await _create_to_start(client, args.latency_runs)
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    rows.append(
        Row(f"create-to-start latency p50 / p99, {len(latencies)} runs", None, f"{p50:.1f} / "
            f"{p99:.1f} ms")
    )  # fmt: skip
    return rows


# --- the run and its table ------------------------------------------------------
def _scoped_targets(node: str, session: Session) -> list[Target]:
    """The requests that read or write the bench user's org data."""
    auth = (("Authorization", f"Bearer {session.api_key}"),)
    json_body = (("Content-Type", "application/json"),)
    return [
        Target(
            f"GET /api/v1/tasks?limit=20, API key, {session.listed} tasks",
            f"{node}/api/v1/tasks?limit=20",
            headers=auth,
        ),
        Target(
            "POST /api/v1/tasks, one-time echo task",
            f"{node}/api/v1/tasks",
            "POST",
            auth + json_body,
            '{"name":"bench-http","handler":"echo"}',
        ),
    ]


def _http_rows(
    bare: str, node: str, session: Session, args: argparse.Namespace, kind: str, workdir: Path
) -> list[Row]:
    targets = [
        Target("bare aiohttp handler (uvloop), GET /health", f"{bare}/health"),
        Target("GET /health", f"{node}/health"),
        *_scoped_targets(node, session),
    ]
    measure = _wrk if kind == "wrk" else _builtin
    rows: list[Row] = []
    reference: float | None = None
    for target in targets:
        load = measure(target, args, workdir)
        reference = reference or load.per_s
        rows.append(Row(target.label, load.per_s, "req/s", load.per_s / reference, _note(load)))
    return rows


def _note(load: Load) -> str:
    return f"({load.other} non-2xx, {load.errors} errors)" if load.other or load.errors else ""


async def _drain_rate(base_url: str, api_key: str, batches: int) -> float:
    async with AsyncClient(base_url, api_key=api_key) as client:
        await _drained(client)
        return (await _batched(client, batches))[1]


@dataclass(frozen=True)
class _Figure:
    """One measure of an org phase: what was done per second, and per second of the
    daemon's CPU time."""

    per_s: float
    per_cpu_s: float


def _cpu_s(pid: int) -> float:
    """The CPU time (user and system, every thread) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _org_phase(
    node: _Process, url: str, session: Session, args: argparse.Namespace, kind: str,
    workdir: Path,
) -> dict[str, _Figure]:  # fmt: skip
    """The org-scoped requests and the drain rate, keyed by row label."""
    from taskflowd.daemon import run_loop

    measure = _wrk if kind == "wrk" else _builtin
    pid = node.proc.pid
    figures: dict[str, _Figure] = {}
    for target in _scoped_targets(url, session):
        cpu = _cpu_s(pid)
        per_s = measure(target, args, workdir).per_s
        done = per_s * args.duration
        figures[target.label] = _Figure(per_s, done / max(_cpu_s(pid) - cpu, 1e-3))
    drain = f"enqueue: {args.batches} tasks.runs() of {BATCH:,}, accepted and drained"
    cpu = _cpu_s(pid)
    per_s = run_loop(_drain_rate(url, session.api_key, args.batches))
    jobs = args.batches * BATCH
    figures[drain] = _Figure(per_s, jobs / max(_cpu_s(pid) - cpu, 1e-3))
    return figures


def _shares(alone: list[float], crowded: list[float]) -> tuple[float, list[float]]:
    """Each crowded measure as a share of the mean of the alone measures before and after
    it, and the mean of those shares."""
    shares = [c / ((alone[i] + alone[i + 1]) / 2) for i, c in enumerate(crowded)]
    return sum(shares) / len(shares), shares


def _percents(values: Sequence[float]) -> str:
    return " / ".join(f"{v * 100:.1f}" for v in values) + " %"


def _org_rows(
    database: str, node: _Process, url: str, session: Session, args: argparse.Namespace,
    kind: str, workdir: Path,
) -> list[Row]:  # fmt: skip
    """The org-scoped figures with the bench user's org alone, and `--org-rounds` times
    with `--orgs` other orgs full of tasks and executions then alone again: each crowded
    figure as a share of the mean of the two alone beside it, averaged over the rounds."""
    from taskflowd.daemon import run_loop

    alone = [_org_phase(node, url, session, args, kind, workdir)]
    crowded = []
    for _ in range(args.org_rounds):
        owners = run_loop(_populate(database, args.orgs))
        try:
            crowded.append(_org_phase(node, url, session, args, kind, workdir))
        finally:
            run_loop(_forget(database, owners))
        alone.append(_org_phase(node, url, session, args, kind, workdir))
    rows = []
    for label in crowded[0]:
        unit = "jobs" if "drained" in label else "req"
        for per, suffix, unit_per in (
            ("per_s", "", f"{unit}/s"),
            ("per_cpu_s", ", per daemon CPU second", f"{unit}/CPU s"),
        ):
            was = [getattr(phase[label], per) for phase in alone]
            now = [getattr(phase[label], per) for phase in crowded]
            mean_alone = sum(was) / len(was)
            share, shares = _shares(was, now)
            spread = f"(alone: {_percents([w / mean_alone for w in was])})"
            rows.append(Row(f"{label}, org alone{suffix}", mean_alone, unit_per, 1.0, spread))
            rows.append(
                Row(
                    f"{label}, {args.orgs:,} other orgs{suffix}",
                    sum(now) / len(now),
                    unit_per,
                    share,
                    f"(rounds: {_percents(shares)})",
                )
            )
    return rows


async def _populate(database: str, orgs: int) -> list[str]:
    from taskflowd.bench_fill import populate_orgs
    from taskflowd.store import open_store

    store = open_store(database)
    await store.start()
    try:
        return await populate_orgs(
            store, orgs, ORG_TASKS, ORG_FINISHED_EXECUTIONS, ORG_PENDING_EXECUTIONS
        )
    finally:
        await store.stop()


async def _forget(database: str, owners: list[str]) -> None:
    from taskflowd.bench_fill import forget_orgs
    from taskflowd.store import open_store

    store = open_store(database)
    await store.start()
    try:
        await forget_orgs(store.db, owners)
    finally:
        await store.stop()


def _print(rows: Sequence[Row], heading: str) -> None:
    print(heading)
    width = max(len(r.label) for r in rows)
    for r in rows:
        value = f"{r.value:,.0f} {r.unit}" if r.value is not None else r.unit
        share = f"{r.share * 100:5.1f} %" if r.share is not None else ""
        print(f"  {r.label:<{width}}  {value:>16}  {share:>7}  {r.note}".rstrip())


def _measure(
    settings: Settings, args: argparse.Namespace, database: str, workdir: Path, kind: str
) -> list[Row]:
    from taskflowd.daemon import run_loop

    account = run_loop(_create_account(database))
    node = _Process(
        _daemon_argv(settings, args, database), _daemon_env(settings), workdir / "daemon.log"
    )
    bare = _Process(_python("taskflowd.bench_http", "bare"), dict(os.environ), workdir / "bare.log")
    try:
        node_url = f"http://127.0.0.1:{node.wait_for(_SERVING, START_TIMEOUT_S)[1]}"
        bare_url = f"http://127.0.0.1:{bare.wait_for(_LISTENING, START_TIMEOUT_S)[1]}"
        session = run_loop(_prepare(node_url, account))
        rows = (
            [] if args.client_only else _http_rows(bare_url, node_url, session, args, kind, workdir)
        )
        rows += run_loop(_client_rows(node_url, session.api_key, args, node.proc.pid))
        if args.orgs:
            rows += _org_rows(database, node, node_url, session, args, kind, workdir)
    finally:
        bare.stop()
        node.stop()
        if not database.startswith("sqlite:"):
            run_loop(_forget_account(database, account))
    return rows


def run_api_bench(settings: Settings, args: argparse.Namespace) -> int:
    """Run the API bench with `settings` (database, queue, worker concurrency) and print
    its table; returns the exit code."""
    from taskflowd.client import TaskflowError

    with tempfile.TemporaryDirectory(prefix="taskflowd-bench-api-") as temp:
        workdir = Path(temp)
        database = settings.database
        if database.startswith("sqlite:"):  # never a real SQLite database
            database = f"sqlite:///{workdir / 'bench.db'}"
        settings = dataclasses.replace(settings, database=database)
        try:
            kind = choose_load(args.load)
            rows = _measure(settings, args, database, workdir, kind)
        except (BenchError, TaskflowError) as exc:
            print(f"taskflowd: bench failed: {exc}", file=sys.stderr)
            return 1
    generator = (
        f"wrk, {args.threads} threads"
        if kind == "wrk"
        else f"built-in aiohttp, {args.threads} processes"
    )
    load = (
        ""
        if args.client_only
        else f"; load generator {generator}, {args.connections} connections, "
        f"{args.duration} s per request kind"
    )
    _print(
        rows,
        f"taskflowd bench --api — store {database.split(':', 1)[0]}, queue {settings.queue}, "
        f"worker concurrency {settings.worker.concurrency}{load}",
    )
    return 0
