"""What `taskflowd serve` loads before it answers: a SQLite node imports no driver and no
client it does not use, builds no pydantic validator until a request needs one, and loads
neither cryptography (no encryption keys), PyJWT (no token seen), Jinja2 (no page served),
croniter (no schedule parsed), bcrypt (no password hashed) nor tomllib (no config file),
and imports the handlers and models of no API resource before its first request
(start-up time and memory, issue 12). Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SERVE = """
import json, sys
from pydantic import BaseModel
from taskflowd import cli, commands
from taskflowd.config import load_settings
from taskflowd.daemon import Daemon

Daemon.build(load_settings(None, overrides={{"database": {database!r}}}))

def models(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from models(sub)

built = [m.__qualname__ for m in models(BaseModel)
         if m.__module__.startswith("taskflowd.") and m.__pydantic_complete__]
print(json.dumps({{"modules": sorted(sys.modules), "built": built}}))
"""

NOT_FOR_SQLITE = (
    "asyncpg",
    "redis",
    "taskflowd.client",
    "taskflowd.client_commands",
    "taskflowd.bench",
    "taskflowd.bench_api",
    "taskflowd.backup",
)

NOT_UNTIL_REQUESTED = ("taskflowd.api.views", "taskflowd.api.schemas")
"""Module name prefixes: every API resource's handlers, and the request and response
models of all of them (`/ready` and `/api/v1/stats` included)."""

NOT_UNTIL_NEEDED = ("cryptography", "jwt", "jinja2", "croniter", "bcrypt", "tomllib")


def _serve_path(tmp_path: Path) -> dict[str, list[str]]:
    code = SERVE.format(database=f"sqlite:///{tmp_path / 'start.db'}")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_a_sqlite_node_builds_without_drivers_clients_or_validators(tmp_path: Path) -> None:
    loaded = _serve_path(tmp_path)
    assert [m for m in NOT_FOR_SQLITE if m in loaded["modules"]] == []
    assert loaded["built"] == []


def test_a_node_without_keys_tokens_pages_schedules_passwords_or_config_file_loads_none(
    tmp_path: Path,
) -> None:
    loaded = _serve_path(tmp_path)
    assert [m for m in NOT_UNTIL_NEEDED if m in loaded["modules"]] == []


def test_a_node_imports_no_resource_handlers_or_models_before_their_first_request(
    tmp_path: Path,
) -> None:
    loaded = _serve_path(tmp_path)
    assert [m for m in loaded["modules"] if m.startswith(NOT_UNTIL_REQUESTED)] == []
