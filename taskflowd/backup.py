"""Online backup of a SQLite database with SQLite's backup API, safe while it is written."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from taskflowd.store.db import sqlite_path


def _copy(source: Path, target: Path) -> int:
    if not source.is_file():
        raise ValueError(f"no database at {source}")
    if target.exists():
        raise ValueError(f"{target} exists already; choose a new file")
    pages = 0

    def progress(status: int, remaining: int, total: int) -> None:
        nonlocal pages
        pages = total

    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            # One step under one read transaction: a stepped backup restarts whenever
            # another connection commits, and may never finish under steady writes.
            src.backup(dst, pages=-1, progress=progress)
        finally:
            dst.close()
    finally:
        src.close()
    return pages


async def backup_sqlite(database_url: str, destination: str) -> int:
    """Copy the database to `destination` consistently; returns the page count.

    Raises ValueError for a non-SQLite URL, a missing source or an existing destination.
    """
    if not database_url.startswith("sqlite:///"):
        raise ValueError("backup copies SQLite databases; use pg_dump for PostgreSQL")
    return await asyncio.to_thread(_copy, sqlite_path(database_url), Path(destination))
