"""The `private_redis` fixture: a private redis-server that the test owns and may kill,
restart or take away (no persistence, a free port), never the shared server.

The server is `tests.integration.cluster.private_redis.PrivateRedis` with `restart()`.
`tests/conftest.py` imports the fixture, so every test can use it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cluster import private_redis as _server
from tests.services import unavailable


class PrivateRedis(_server.PrivateRedis):
    """`start()`, `kill()` (SIGKILL: nothing is saved), `restart()` (kill, then start an
    empty server on the same port), `destroy()` at the end."""

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A started private Redis server of this test's own, destroyed afterwards."""
    reason = _server.missing()
    if reason is not None:
        unavailable("a private Redis server", reason)
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
