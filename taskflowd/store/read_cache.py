"""Values derived from repeated SQLite reads, answered again on the event loop until
the database changes.

In WAL mode every commit, by any connection of any process, rewrites the wal-index
header at the start of the `-shm` file, which every connection maps (SQLite's own
readers compare it to decide whether their cache is still good; see "The WAL-Index
Format", https://www.sqlite.org/walformat.html). The header is written twice, the second
copy after the first, so a reader that finds both copies equal has read a complete one.
Reading it is a memory read: no statement, no thread hand-over, no system call.

A value is kept with the header seen before the read it came from, and answered again
while the header is still the same: so never once a commit has been made after that
read began, whoever made it. A checkpoint changes the header too (the value is then read
again, which is merely cautious).
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
HEADER_BYTES = 48
"""One copy of the wal-index header (`WalIndexHdr`); the second copy follows it."""


class WalHeader:
    """The wal-index header of a database in WAL mode, read from its `-shm` file.

    Open it while a connection keeps the database open (the file lives as long as one
    does) and close it only after the last of this process's connections closed: closing
    any descriptor of the file drops every POSIX lock the process holds on it, SQLite's
    included (sqlite.org/howtocorrupt.html, 2.2). Without its lock on the `-shm` file,
    the next process to open the database takes the file for unused and truncates it
    under this process's connections (a SIGBUS in whichever touches the mapping next).
    The bytes can be read from any thread."""

    def __init__(self, database: Path) -> None:
        self._path = Path(f"{database}-shm")
        self._fd: int | None = None
        self._map: mmap.mmap | None = None

    def open(self) -> None:
        fd = os.open(self._path, os.O_RDONLY)
        try:
            self._map = mmap.mmap(fd, 2 * HEADER_BYTES, access=mmap.ACCESS_READ)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def close(self) -> None:
        """Unmap and close the file: call it after the connections closed (see above)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def frames(self) -> int | None:
        """The frames in the log now (`mxFrame`); None when the header cannot be trusted."""
        header = self.read()
        return None if header is None else int.from_bytes(header[16:20], sys.byteorder)

    def read(self) -> bytes | None:
        """The header now; None when it cannot be trusted (closed, or being written:
        the two copies differ)."""
        if self._map is None:
            return None
        both = self._map[: 2 * HEADER_BYTES]
        first = both[:HEADER_BYTES]
        return first if first == both[HEADER_BYTES:] else None


class ReadCache:
    """Derived values by (SQL, arguments), each with the header read before its read.
    Used on the event loop only; up to `max_chars` of read text is accounted for."""

    def __init__(self, header: WalHeader, max_chars: int = 8 << 20) -> None:
        self.header = header
        self.max_chars = max_chars
        self._seen: bytes | None = None
        self._values: dict[tuple[str, tuple[Any, ...]], Any] = {}
        self._chars = 0

    def get(self, key: tuple[str, tuple[Any, ...]]) -> tuple[bool, Any]:
        """(True, value) when `key`'s value was read since the last commit."""
        now = self.header.read()
        if now is None or now != self._seen:
            self._forget()
            return False, None
        if key in self._values:
            return True, self._values[key]
        return False, None

    def put(
        self, key: tuple[str, tuple[Any, ...]], seen: bytes | None, chars: int, value: Any
    ) -> None:
        """Keep `value`, read after the header was `seen` (nothing when it was not
        readable, or when the database changed since the values kept now were read)."""
        if seen is None or chars > self.max_chars:
            return
        if seen != self._seen:
            self._forget()
            self._seen = seen
        if self._chars + chars > self.max_chars:
            self._values.clear()
            self._chars = 0
        self._values[key] = value
        self._chars += chars

    def _forget(self) -> None:
        self._values.clear()
        self._chars = 0
        self._seen = None


def read_job(
    header: WalHeader, derive: Callable[[list[Any]], T], read: Callable[[], list[Any]]
) -> tuple[bytes | None, int, T]:
    """In a reader's thread: the header, then the rows `read` returns, their text length
    and the value `derive` makes of them."""
    seen = header.read()
    rows = read()
    chars = sum(len(v) for row in rows for v in row if isinstance(v, str))
    return seen, chars, derive(rows)
