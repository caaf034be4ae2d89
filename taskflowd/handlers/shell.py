"""The `shell` handler: runs one program from an argv list, never through a shell.

Admin-only and off unless enabled in config. Guarantees:

- The program runs in a new session (its own process group) with stdin from /dev/null.
- Environment: a minimal one, `PATH` (the daemon's, unless given to ShellHandler) plus
  the payload's `env` on top. The daemon's own environment (database URLs, secrets) is
  never inherited; a program that needs HOME or LANG gets them through `env`.
- stdout and stderr are collected as they arrive, so the program never stalls on a full
  pipe; each keeps its first `max_output_bytes`, the rest is discarded and `truncated`
  is set.
- The job lasts as long as the main process: when it exits, whatever is left of its
  process group is killed (as systemd does with a unit's control group).
- On cancellation (the worker's timeout) the group gets SIGTERM, then SIGKILL after
  `kill_grace_s`; the main process is always reaped before CancelledError propagates.
- Exit 0 gives `{"exitCode": 0, "stdout", "stderr", "truncated"}`; anything else fails
  retryably with `exit_status`; a program that cannot be started fails for good with
  `spawn_failed`. Neither argv (beyond the program name) nor env values are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from typing import Any, TypeVar

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError
from taskflowd.handlers import parsing
from taskflowd.handlers.base import PAYLOAD_MODELS, HandlerSpec, JobContext, JobError

_STDERR_TAIL_CHARS = 1000
T = TypeVar("T")


class _Capture:
    """Keeps the first `cap` bytes of a stream and notes whether more arrived."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self._cap - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Collector:
    """Collects output as it arrives (so pipes never fill) and reports two events.

    `exited` is set once the main process has exited and been reaped; `pipes_closed`
    once every holder of stdout and stderr (children included) has closed them.
    asyncio's own `Process.wait()` merges the two, which would let a stray child that
    holds the pipes keep a finished job running.
    """

    def __init__(self, cap: int, loop: asyncio.AbstractEventLoop) -> None:
        self.stdout = _Capture(cap)
        self.stderr = _Capture(cap)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open_fds = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        (self.stdout if fd == 1 else self.stderr).add(data)

    def pipe_connection_lost(self, fd: int) -> None:
        self._open_fds.discard(fd)
        if not self._open_fds and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)


class _Pipe(asyncio.Protocol):
    """One of the child's output pipes, read by the event loop into the collector."""

    def __init__(self, output: _Collector, fd: int) -> None:
        self._output = output
        self._fd = fd

    def data_received(self, data: bytes) -> None:
        self._output.pipe_data_received(self._fd, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._output.pipe_connection_lost(self._fd)


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)


def _spawn_and_reap(
    argv: list[str],
    options: dict[str, Any],
    loop: asyncio.AbstractEventLoop,
    started: asyncio.Future[subprocess.Popen[bytes]],
    exited: asyncio.Future[None],
) -> None:
    """The child's own thread: fork/exec off the event loop, then wait for the exit (no
    thread of the shared executor is held for the job's lifetime)."""
    try:
        process = subprocess.Popen(argv, **options)
    except OSError as exc:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, started, exc)
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, started, process)
    process.wait()
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, exited, None)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # ESRCH: the whole group is gone already. EPERM: only members we may not signal
    # (a setuid program) are left; nothing more can be done about them from here.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ShellHandler:
    """Runs argv payloads; holds no resources between runs."""

    def __init__(
        self,
        *,
        max_output_bytes: int = 64 * 1024,
        kill_grace_s: float = 2.0,
        path: str | None = None,
    ) -> None:
        self._max_output_bytes = max_output_bytes
        self._kill_grace_s = kill_grace_s
        self._path = os.environ.get("PATH", os.defpath) if path is None else path

    def spec(self) -> HandlerSpec:
        return HandlerSpec(
            "shell",
            self.run,
            self.validate,
            admin_only=True,
            step_envelope=False,
            models=PAYLOAD_MODELS,
        )

    def validate(self, payload: JSON) -> list[FieldError]:
        from taskflowd.handlers.payloads import ShellPayload

        return parsing.check(ShellPayload, payload)

    async def run(self, payload: JSON, ctx: JobContext) -> JSON:
        from taskflowd.handlers.payloads import ShellPayload

        request = parsing.parse(ShellPayload, payload)
        program = request.argv[0]
        loop = asyncio.get_running_loop()
        output = _Collector(self._max_output_bytes, loop)
        started: asyncio.Future[subprocess.Popen[bytes]] = loop.create_future()
        options: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "cwd": request.cwd,
            "env": {"PATH": self._path, **(request.env or {})},
            "start_new_session": True,
        }
        threading.Thread(
            target=_spawn_and_reap,
            args=(list(request.argv), options, loop, started, output.exited),
            name=f"shell:{program}",
            daemon=True,
        ).start()
        try:
            process = await asyncio.shield(started)
        except OSError as exc:
            raise JobError(
                f"cannot start {program!r}: {exc}", error_type="spawn_failed", retryable=False
            ) from None
        except asyncio.CancelledError:
            # The thread spawns it anyway: stop what it started before giving up.
            with contextlib.suppress(OSError):
                process = await _finish_despite_cancel(started)
                try:
                    await self._stop_group(process.pid, output)
                finally:
                    for stream in (process.stdout, process.stderr):
                        if stream is not None:
                            stream.close()
            raise
        pid = process.pid
        ctx.logger.debug("shell started %s as pid %d", program, pid)
        assert process.stdout is not None and process.stderr is not None
        pipes = [
            (await loop.connect_read_pipe(lambda: _Pipe(output, 1), process.stdout))[0],
            (await loop.connect_read_pipe(lambda: _Pipe(output, 2), process.stderr))[0],
        ]
        try:
            # Shielded: cancelling this task must not cancel the future itself, which
            # still has to tell _stop_group when the process is really gone.
            await asyncio.shield(output.exited)
            # Strays would keep the pipes open and outlive the job; the group is ours.
            _signal_group(pid, signal.SIGKILL)
            # Only a child that left the group (setsid) can hold the pipes now: give it
            # the grace period, then stop reading rather than hang.
            await asyncio.wait([output.pipes_closed], timeout=self._kill_grace_s)
        except BaseException:
            await self._stop_group(pid, output)
            raise
        finally:
            for pipe in pipes:
                pipe.close()
        code = process.returncode
        assert code is not None  # set before `exited` resolves
        ctx.logger.debug("shell %s exited with %d", program, code)
        if code != 0:
            raise JobError(
                _exit_message(program, code, output.stderr.text()), error_type="exit_status"
            )
        return {
            "exitCode": code,
            "stdout": output.stdout.text(),
            "stderr": output.stderr.text(),
            "truncated": output.stdout.truncated or output.stderr.truncated,
        }

    async def _stop_group(self, pid: int, output: _Collector) -> None:
        """SIGTERM the group, wait up to the grace for it to go, then SIGKILL and reap."""
        _signal_group(pid, signal.SIGTERM)
        try:
            # The pipes close when every member that holds them, not just the leader, exited.
            await asyncio.wait([output.exited, output.pipes_closed], timeout=self._kill_grace_s)
        finally:
            _signal_group(pid, signal.SIGKILL)
            await _finish_despite_cancel(output.exited)


async def _finish_despite_cancel(future: asyncio.Future[T]) -> T:
    """Await `future` to the end even if cancelled again meanwhile, then re-raise that.

    Used only where the wait is short (a spawn, a reap after SIGKILL); it guarantees no
    unreaped child.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return future.result()


def _exit_message(program: str, code: int, stderr: str) -> str:
    if code < 0:
        try:
            what = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            what = f"was killed by signal {-code}"
    else:
        what = f"exited with status {code}"
    tail = stderr.strip()[-_STDERR_TAIL_CHARS:]
    return f"{program} {what}" + (f"; stderr: {tail}" if tail else "")
