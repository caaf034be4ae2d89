"""Real daemon processes for end-to-end tests.

`DaemonProcess` runs `python -m taskflowd serve --port 0` in a directory of its own,
reads the port it bound from its "serving on HOST:PORT" log line, and keeps everything
it wrote to stderr for assertions. The `daemons` factory fixture kills whatever is
still running at teardown. `Jobs` talks to the daemon's database from the test process
through the same services the daemon uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from taskflowd.domain.entities import Execution, Task, User
from taskflowd.domain.enums import ExecutionStatus, TaskType
from taskflowd.domain.rules import TaskSpec
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.queue.sql import SqlQueue
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore, open_store
from taskflowd.store import rows as store_rows

T = TypeVar("T")

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-123"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

# Settings that make a daemon react within a fraction of a second instead of its
# production defaults; every test may add its own on top.
FAST_ENV = {
    "TASKFLOW_WORKER__SAFETY_POLL_S": "0.2",
    "TASKFLOW_WORKER__LEASE_S": "2",
    "TASKFLOW_AUTH__BCRYPT_ROUNDS": "4",
    "TASKFLOW_SCHEDULER__SWEEP_INTERVAL_S": "1",
    "TASKFLOW_ADMIN_EMAIL": ADMIN_EMAIL,
    "TASKFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
}
_SERVING = re.compile(r"serving on (?P<host>\S+):(?P<port>\d+) \(node (?P<node>[0-9a-f]+)")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def clean_env(
    extra: Mapping[str, str | None] | None = None, *, fast: bool = True
) -> dict[str, str]:
    """os.environ without any TASKFLOW_* variable (the daemon rejects unknown ones),
    plus FAST_ENV when `fast`, plus `extra` (where None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    if fast:
        env.update(FAST_ENV)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def taskflowd_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "taskflowd", *args]


def run_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout_s: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run one `taskflowd` command to completion and capture its output."""
    return subprocess.run(
        taskflowd_cmd(*args),
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of GET `url`, without any proxy from the environment."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def _pump(stream: Any, sink: list[str], changed: threading.Condition) -> None:
    for raw in iter(stream.readline, b""):
        with changed:
            sink.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
            changed.notify_all()
    with changed:
        changed.notify_all()


class DaemonProcess:
    """One `taskflowd serve` subprocess; see the module docstring."""

    def __init__(self, cwd: Path, env: Mapping[str, str], args: Sequence[str] = ()) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.node_id: str | None = None
        self._stderr: list[str] = []
        self._stdout: list[str] = []
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []

    # --- life cycle -------------------------------------------------------------
    def start(self) -> DaemonProcess:
        assert self.proc is None, "a DaemonProcess starts once; make a new one to restart"
        self.proc = subprocess.Popen(
            taskflowd_cmd("serve", "--port", "0", *self.args),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for stream, sink in ((self.proc.stderr, self._stderr), (self.proc.stdout, self._stdout)):
            thread = threading.Thread(target=_pump, args=(stream, sink, self._changed), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait for the "serving on" line, then for GET /health to answer 200."""
        line = self.wait_for_stderr(_SERVING.pattern, timeout_s)
        found = _SERVING.search(line)
        assert found is not None
        self.port = int(found["port"])
        self.node_id = found["node"]
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            self._fail_if_exited("waiting for /health")
            try:
                status, _ = http_get(self.url("/health"), timeout_s=2.0)
                if status == 200:
                    return
                last = status
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(f"/health never answered 200 (last: {last!r})\n{self.stderr}")

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait for exit, return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(
                f"daemon did not exit within {timeout_s} s of SIGTERM\n{self.stderr}"
            ) from None
        self._join()
        return code

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for the process to exit on its own; returns the exit code."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout_s} s\n{self.stderr}") from None
        self._join()
        return code

    def kill9(self) -> int:
        """SIGKILL: no cleanup at all, as when the machine or the OOM killer strikes."""
        assert self.proc is not None
        self.proc.kill()
        code = self.proc.wait(STOP_TIMEOUT_S)
        self._join()
        return code

    def close(self) -> None:
        """Kill the process if it still runs and release its pipes; safe to call twice."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(STOP_TIMEOUT_S)
        self._join()

    def _join(self) -> None:
        assert self.proc is not None
        for thread in self._threads:
            thread.join(STOP_TIMEOUT_S)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    # --- output -----------------------------------------------------------------
    def url(self, path: str) -> str:
        assert self.port is not None, "wait_healthy() first"
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self._stderr)

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self._stdout)

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines among stderr, parsed."""
        with self._changed:
            lines = list(self._stderr)
        records = []
        for line in lines:
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def wait_for_stderr(self, pattern: str, timeout_s: float) -> str:
        """The first stderr line matching `pattern`; fails if the process exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._changed:
            while True:
                for line in self._stderr[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self._stderr)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not any(t.is_alive() for t in self._threads):
                    break  # stderr closed: the process has exited
                self._changed.wait(min(remaining, 0.1))
        self._fail_if_exited(f"waiting for {pattern!r}")
        raise AssertionError(f"no stderr line matched {pattern!r} in {timeout_s} s\n{self.stderr}")

    def _fail_if_exited(self, doing: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self._join()
            raise AssertionError(
                f"daemon exited with {self.proc.returncode} while {doing}\n{self.stderr}"
            )


class Daemons:
    """Starts daemons for one test and kills every one still running at teardown."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[DaemonProcess] = []

    def start(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        healthy: bool = True,
        fast: bool = True,
    ) -> DaemonProcess:
        """A started daemon (waited healthy unless `healthy=False`); see `clean_env`."""
        daemon = DaemonProcess(cwd or self.workdir, clean_env(env, fast=fast), args)
        self.started.append(daemon)
        daemon.start()
        if healthy:
            daemon.wait_healthy()
        return daemon

    async def astart(
        self, *args: str, env: Mapping[str, str | None] | None = None
    ) -> DaemonProcess:
        """`start` for async tests: waits in a thread, not on the event loop."""
        return await asyncio.to_thread(self.start, *args, env=env)

    def close_all(self) -> None:
        for daemon in self.started:
            daemon.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def daemons(workdir: Path) -> Iterator[Daemons]:
    factory = Daemons(workdir)
    yield factory
    factory.close_all()


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    timeout_s: float = 60.0,
    interval_s: float = 0.05,
) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")


@dataclass
class Jobs:
    """The test process's own view of a daemon's database: create tasks the way the API
    does (TaskService), and read executions back."""

    store: SqlStore
    service: TaskService
    actor: User

    async def create(
        self,
        name: str,
        handler: str = "echo",
        payload: Any = None,
        *,
        type: TaskType = TaskType.ONE_TIME,
        cron: str | None = None,
        max_retries: int = 0,
    ) -> Task:
        spec = TaskSpec(
            name=name,
            type=type,
            handler=handler,
            payload=payload,
            cron_expression=cron,
            max_retries=max_retries,
        )
        return await self.service.create(self.actor, spec)

    async def executions(self, task_id: str | None = None) -> list[Execution]:
        where, args = ("WHERE task_id = $1", (task_id,)) if task_id else ("", ())
        found = await self.store.db.fetch(f"SELECT * FROM job_executions {where}", *args)
        return [store_rows.execution_from_row(r, self.store.db.codec) for r in found]

    async def single(self, task_id: str) -> Execution:
        """The one execution of a one-time task."""
        found = await self.executions(task_id)
        assert len(found) == 1, found
        return found[0]

    async def wait_status(
        self, task_id: str, status: ExecutionStatus, timeout_s: float = 60.0
    ) -> Execution:
        """Poll until the one execution of `task_id` has `status`; returns it. Fails at once
        when the execution ended in another status, which it cannot leave."""

        async def reached() -> Execution | None:
            execution = await self.single(task_id)
            if execution.status is not status and execution.status.is_final:
                raise AssertionError(f"waiting for {status.value}, it ended: {execution!r}")
            return execution if execution.status is status else None

        return await eventually(reached, f"task {task_id} to be {status.value}", timeout_s)

    async def count_by_status(self) -> dict[str, int]:
        found = await self.store.db.fetch(
            "SELECT status, COUNT(*) AS n FROM job_executions GROUP BY status"
        )
        return {r["status"]: int(r["n"]) for r in found}

    async def node_ids(self) -> set[str]:
        return {r["id"] for r in await self.store.db.fetch("SELECT id FROM nodes")}


@contextlib.asynccontextmanager
async def open_jobs(url: str, email: str = ADMIN_EMAIL) -> AsyncIterator[Jobs]:
    """Jobs on the database at `url`, acting as the user `email` (the bootstrap admin)."""
    store = open_store(url)
    await store.start()
    registry = HandlerRegistry.build(
        shell_enabled=False,
        http_allow_private=False,
        http_allowed_networks=(),
        http_timeout_s=5.0,
        http_max_response_bytes=1024,
        shell_max_output_bytes=1024,
        load_plugins=False,
    )
    try:
        actor = await store.get_user_by_email(email)
        assert actor is not None, f"no user {email}: start a daemon on {url} first"
        yield Jobs(store, TaskService(store, SqlQueue(store.db), registry), actor)
    finally:
        await registry.close()
        await store.stop()
