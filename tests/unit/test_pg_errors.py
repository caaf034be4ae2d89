"""Driver errors of asyncpg become taskflowd's store errors at the boundary, so the loops
above `store/` ride out an outage instead of crashing on an error they cannot name."""

from __future__ import annotations

import asyncpg
import pytest

from taskflowd.store.db import _pg_errors, _translate_pg
from taskflowd.store.errors import DuplicateKey, StoreError, StoreUnavailable


@pytest.mark.parametrize(
    "exc",
    [
        # Seen when PostgreSQL shut down during a claim's COMMIT.
        asyncpg.InternalClientError("cannot switch to state 15; another operation is in progress"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        ConnectionResetError("reset by peer"),
    ],
)
def test_a_broken_connection_is_an_outage(exc: BaseException) -> None:
    assert isinstance(exc, _pg_errors())
    assert isinstance(_translate_pg(exc), StoreUnavailable)


def test_a_duplicate_is_a_duplicate_and_other_errors_are_store_errors() -> None:
    assert isinstance(_translate_pg(asyncpg.UniqueViolationError("dup")), DuplicateKey)
    other = _translate_pg(asyncpg.DataError("bad"))
    assert type(other) is StoreError
