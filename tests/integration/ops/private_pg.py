"""A private PostgreSQL server for tests that stop and restart it: its own data directory,
port and socket directory, never the shared server on 5432.

initdb refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

PG_BIN = Path(os.environ.get("TASKFLOW_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def missing() -> str | None:
    """Why a private server cannot run here, or None."""
    if not (PG_BIN / "initdb").is_file():
        return f"no initdb in {PG_BIN} (set TASKFLOW_TEST_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to drop to the postgres user"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivatePostgres:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="taskflowd-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(PG_BIN / tool), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _ctl(self, *args: str) -> list[str]:
        return self._argv("pg_ctl", "-D", str(self.data), *args)

    def _start_argv(self) -> list[str]:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        return self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def init_and_start(self) -> None:
        self._run(
            self._argv(
                "initdb",
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            )
        )
        self._run(self._start_argv())

    def _run(self, argv: Sequence[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}\n{done.stderr}\n{self._log()}")

    def _log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    async def _arun(self, argv: Sequence[str]) -> None:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{argv} failed: {out.decode()}\n{err.decode()}\n{self._log()}")

    async def stop(self) -> None:
        await self._arun(self._ctl("-m", "fast", "-w", "-t", "60", "stop"))

    async def start(self) -> None:
        await self._arun(self._start_argv())

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._ctl("-m", "immediate", "-w", "stop"),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
