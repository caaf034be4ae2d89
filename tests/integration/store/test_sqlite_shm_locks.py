"""A node's SQLite database stays marked as in use for other processes: the node never
drops SQLite's locks on the `-shm` file (closing any descriptor of a file drops all of a
process's POSIX locks on it), so a process opening the database meanwhile (`sqlite3`,
a backup) does not take itself for the first, reset the file and crash the node with a
SIGBUS."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from taskflowd.store.db import SqliteDatabase

DEAD_MAN_SWITCH = 128
"""The byte of the -shm file every connection holds a read lock on (SQLite's unix VFS,
`UNIX_SHM_DMS`); a process that can write-lock it takes itself for the only user."""

PROBE = f"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, {DEAD_MAN_SWITCH})
except OSError:
    print("in use")
else:
    print("free")
"""


def probe(shm: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(shm)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_another_process_finds_the_database_in_use(tmp_path: Path) -> None:
    db = SqliteDatabase(f"sqlite:///{tmp_path / 'node.db'}")
    await db.connect()
    try:
        await db.execute("CREATE TABLE t (x INTEGER)")
        await db.fetch("SELECT x FROM t")
        assert await asyncio.to_thread(probe, tmp_path / "node.db-shm") == "in use"
    finally:
        await db.close()
