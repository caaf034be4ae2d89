"""What a person sees starting the daemon in a terminal: readable text lines; what
systemd, a container runtime or a pipe gets: JSON lines (log.format = "auto")."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import Daemons, clean_env, taskflowd_cmd

SERVING = "serving on 127.0.0.1:"


def read_until(fd: int, needle: str, timeout_s: float = 30.0) -> str:
    """Everything the terminal showed up to the line holding `needle`."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} never appeared on the terminal:\n{seen.decode()}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed, the process is gone
                chunk = b""
            assert chunk, f"the daemon exited before {needle!r}:\n{seen.decode()}"
            seen += chunk
    return seen.decode(errors="replace")


def test_on_a_terminal_the_daemon_logs_readable_text(workdir: Path) -> None:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        taskflowd_cmd("serve", "--port", "0"),
        cwd=workdir,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        shown = read_until(controller, SERVING)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        os.close(controller)
    [line] = [ln for ln in shown.splitlines() if SERVING in ln]
    assert not line.lstrip().startswith("{"), shown
    assert " INFO    taskflowd.daemon: taskflowd " in line, line
    assert process.returncode == 0


def test_into_a_pipe_the_daemon_logs_json(daemons: Daemons) -> None:
    daemon = daemons.start()
    [line] = [ln for ln in daemon.stderr.splitlines() if SERVING in ln]
    assert json.loads(line)["logger"] == "taskflowd.daemon"
