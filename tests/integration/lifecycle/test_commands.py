"""`taskflowd rotate-keys` and `taskflowd migrate --vacuum`, as the CLI runs them."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from taskflowd import commands
from taskflowd.audit.records import AuditFilter
from taskflowd.config import AuthSettings, SecuritySettings, Settings
from taskflowd.store import open_store
from taskflowd.store.codec import Keyring, key_id, sealed_key_id
from tests.integration.store.factories import make_task, make_user


def _settings(path: Path, *keys: bytes) -> Settings:
    texts = tuple(base64.b64encode(k).decode() for k in keys)
    return Settings(database=f"sqlite:///{path}", security=SecuritySettings(texts))


async def test_rotate_keys_encrypts_plain_rows_under_the_first_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.db"
    store = open_store(f"sqlite:///{path}")
    await store.start()
    owner = await store.create_user(make_user())
    task = await store.create_task(make_task(owner.id, payload={"n": 1}))
    await store.stop()

    key = os.urandom(32)
    args = argparse.Namespace()
    assert await asyncio.to_thread(commands.rotate_keys, _settings(path, key), args) == 0
    assert "re-encrypted 1 values" in capsys.readouterr().out

    store = open_store(f"sqlite:///{path}", Keyring([key]))
    await store.start()
    try:
        row = await store.db.fetchrow("SELECT payload FROM tasks WHERE id = $1", task.id)
        assert row is not None and sealed_key_id(row["payload"]) == key_id(key)
        found = await store.get_task(task.id)
        assert found is not None and found.payload == {"n": 1}
        (rotated,) = (await store.audit.page(AuditFilter(action="security.keys_rotated"), 5)).items
        assert rotated.actor.type == "system"
        assert rotated.changes == {"keyId": [None, key_id(key)], "valuesResealed": [None, 1]}
    finally:
        await store.stop()
    without = Settings(database=f"sqlite:///{path}")
    with pytest.raises(commands.CommandError, match="does not hold"):
        await asyncio.to_thread(commands.rotate_keys, without, args)


async def test_migrate_vacuum_converts_an_older_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "older.db"
    conn = sqlite3.connect(path)  # a file made without incremental vacuum
    conn.execute("CREATE TABLE leftover (x INTEGER)")
    conn.close()
    args = argparse.Namespace(vacuum=True)
    assert await asyncio.to_thread(commands.migrate, _settings(path), args) == 0
    assert "converted to incremental vacuum" in capsys.readouterr().out
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    finally:
        conn.close()
    assert await asyncio.to_thread(commands.migrate, _settings(path), args) == 0
    assert "already gives pruned pages back" in capsys.readouterr().out


async def test_user_commands_are_recorded_as_the_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users.db"
    settings = Settings(database=f"sqlite:///{path}", auth=AuthSettings(bcrypt_rounds=4))
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    create = argparse.Namespace(
        user_command="create",
        email="cli@example.com",
        first_name="Cli",
        last_name="User",
        admin=False,
        password_stdin=True,
    )
    assert await asyncio.to_thread(commands.user, settings, create) == 0
    deactivate = argparse.Namespace(user_command="deactivate", email="cli@example.com")
    assert await asyncio.to_thread(commands.user, settings, deactivate) == 0
    capsys.readouterr()

    store = open_store(f"sqlite:///{path}")
    await store.start()
    try:
        events = (await store.audit.page(AuditFilter(target_type="user"), 10)).items
    finally:
        await store.stop()
    assert [e.action for e in events] == ["user.deactivated", "user.created"]
    assert {e.actor.type for e in events} == {"system"}
    assert events[1].changes["passwordHash"] == [None, "[redacted]"]
    assert events[0].changes == {"isActive": [True, False]}
