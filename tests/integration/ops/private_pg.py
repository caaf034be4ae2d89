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


def _as_postgres(argv: Sequence[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


def _tail(log: Path | None) -> str:
    try:
        return log.read_text(errors="replace")[-2000:] if log is not None else ""
    except OSError:
        return ""


def _run(argv: Sequence[str], log: Path | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stdout}\n{done.stderr}\n{_tail(log)}")


def _owned_tempdir(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return root


class InitdbTemplate:
    """One initdb per test session; every private server starts from a copy of it (the
    copy takes a fraction of initdb's time and gives the same pristine cluster)."""

    def __init__(self) -> None:
        self.root = _owned_tempdir("taskflowd-pg-template-")
        self.data = self.root / "data"
        _run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
        )

    def copy_to(self, data: Path) -> None:
        _run(_as_postgres(["cp", "-a", str(self.data), str(data)]))

    def destroy(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PrivatePostgres:
    def __init__(self) -> None:
        self.root = _owned_tempdir("taskflowd-pg-")
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _argv(self, tool: str, *args: str) -> list[str]:
        return _as_postgres([str(PG_BIN / tool), *args])

    def _ctl(self, *args: str) -> list[str]:
        return self._argv("pg_ctl", "-D", str(self.data), *args)

    def _start_argv(self) -> list[str]:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        return self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def init_and_start(self, template: InitdbTemplate) -> None:
        """Start on a copy of `template`'s freshly initialised data directory."""
        template.copy_to(self.data)
        _run(self._start_argv(), self.log)

    def _log(self) -> str:
        return _tail(self.log)

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
