"""The shell handler with real processes: output, exit codes, caps and killing trees."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from taskflowd.domain.entities import JSON
from taskflowd.handlers.base import JobContext, JobError
from taskflowd.handlers.shell import ShellHandler

PY = sys.executable  # absolute: the handler's minimal environment has no pyenv/venv setup

# The parent starts a child that sleeps, records both pids, then waits for the child.
TREE = """
import os, subprocess, sys, signal
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
child.wait()
"""

# The parent starts a child that inherits stdout, records its pid and exits at once.
STRAY = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "w") as f:
    f.write(str(child.pid))
print("parent done")
"""


def make_ctx() -> JobContext:
    return JobContext("exec-1", "task-1", 1, "exec-1:1", logging.getLogger("test"))


async def run_py(handler: ShellHandler, code: str, *args: str, **extra: object) -> JSON:
    return await handler.run({"argv": [PY, "-c", code, *args], **extra}, make_ctx())


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


def process_state(pid: int) -> str | None:
    """The /proc state letter of `pid` ("Z" for a zombie), or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return None


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def is_dead(pid: int) -> bool:
    # A grandchild is re-parented to PID 1, which in a container may never reap it:
    # dead-but-unreaped (a zombie) is as dead as we can make it.
    return is_gone(pid) or process_state(pid) == "Z"


def read_pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


async def test_output_is_captured() -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    result = await run_py(ShellHandler(), code)
    assert result == {"exitCode": 0, "stdout": "out\n", "stderr": "err\n", "truncated": False}


async def test_non_zero_exit_fails_retryably_with_the_stderr_tail() -> None:
    code = (
        "import sys; print('x' * 5000, file=sys.stderr); "
        "print('disk full', file=sys.stderr); sys.exit(3)"
    )
    with pytest.raises(JobError) as caught:
        await run_py(ShellHandler(), code)
    assert (caught.value.error_type, caught.value.retryable) == ("exit_status", True)
    message = str(caught.value)
    assert "status 3" in message
    assert message.endswith("disk full")
    assert len(message) < 1200


async def test_output_beyond_the_cap_is_drained_and_dropped() -> None:
    # 1 MiB on each stream: more than a pipe holds, so this also proves both are drained.
    code = "import sys; sys.stdout.write('o' * 2**20); sys.stderr.write('e' * 2**20)"
    result = await run_py(ShellHandler(max_output_bytes=1000), code)
    assert isinstance(result, dict)
    assert result["stdout"] == "o" * 1000
    assert result["stderr"] == "e" * 1000
    assert result["truncated"] is True


async def test_environment_is_minimal_plus_the_payload_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_TEST_SECRET", "do-not-leak")
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    result = await run_py(ShellHandler(path="/usr/bin:/bin"), code, env={"GREETING": "hi"})
    assert isinstance(result, dict)
    env = json.loads(result["stdout"])
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["GREETING"] == "hi"
    assert "TASKFLOW_TEST_SECRET" not in env


async def test_cwd_is_used(tmp_path: Path) -> None:
    result = await run_py(ShellHandler(), "import os; print(os.getcwd())", cwd=str(tmp_path))
    assert isinstance(result, dict)
    assert result["stdout"].strip() == str(tmp_path)


async def test_arguments_reach_the_program_verbatim() -> None:
    code = "import sys; print(sys.argv[1:])"
    result = await run_py(ShellHandler(), code, "$HOME", "a b", "; rm -rf /")
    assert isinstance(result, dict)
    assert result["stdout"] == "['$HOME', 'a b', '; rm -rf /']\n"


@pytest.mark.parametrize(
    "payload",
    [{"argv": ["/nonexistent/program"]}, {"argv": [PY, "-c", "pass"], "cwd": "/nonexistent/dir"}],
)
async def test_a_program_that_cannot_start_fails_for_good(payload: dict[str, object]) -> None:
    with pytest.raises(JobError) as caught:
        await ShellHandler().run(payload, make_ctx())
    assert (caught.value.error_type, caught.value.retryable) == ("spawn_failed", False)
    assert "/nonexistent/" in str(caught.value)


async def test_cancellation_kills_the_whole_process_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    task = asyncio.create_task(run_py(ShellHandler(), TREE, str(pidfile), "plain"))
    await wait_until(pidfile.exists, "the tree has started")
    parent, child = read_pids(pidfile)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The parent is our child: reaped before the cancellation propagated, no zombie.
    assert is_gone(parent)
    assert process_state(parent) is None
    await wait_until(lambda: is_dead(child), "the grandchild is dead")


async def test_a_tree_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    handler = ShellHandler(kill_grace_s=0.2)
    started = asyncio.create_task(run_py(handler, TREE, str(pidfile), "ignore-term"))
    await wait_until(pidfile.exists, "the tree has started")
    parent, child = read_pids(pidfile)
    # What the worker does on a job timeout.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(started, timeout=0.05)
    assert started.cancelled()
    assert is_gone(parent)
    await wait_until(lambda: is_dead(child), "the grandchild is dead")


async def test_strays_are_killed_when_the_main_process_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "stray"
    result = await run_py(ShellHandler(), STRAY, str(pidfile))
    assert isinstance(result, dict)
    assert result["stdout"] == "parent done\n"
    stray = int(pidfile.read_text())
    await wait_until(lambda: is_dead(stray), "the stray child is dead")
