"""What `taskflowd serve` loads before it answers: a SQLite node imports no driver and no
client it does not use; it imports pydantic, the API's handlers and models and the
dashboard's pages with the first request (or job) that needs them; and it loads neither
cryptography (no encryption keys), PyJWT (no token seen), Jinja2 (no page served),
croniter (no schedule parsed), bcrypt (no password hashed) nor tomllib (no config file)
(start-up time and memory, issue 12). Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SERVE = """
import json, sys
from taskflowd import cli, commands
from taskflowd.config import load_settings
from taskflowd.daemon import Daemon

Daemon.build(load_settings(None, overrides={{"database": {database!r}}}))
print(json.dumps(sorted(sys.modules)))
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

NOT_UNTIL_REQUESTED = (
    "pydantic",
    "taskflowd.api.views",
    "taskflowd.api.schemas",
    "taskflowd.handlers.payloads",
    "taskflowd.dashboard.views_",
    "taskflowd.dashboard.forms",
    "taskflowd.dashboard.graph_svg",
)
"""Module name prefixes: pydantic, every API resource's handlers, the request and response
models of all of them (`/ready` and `/api/v1/stats` included), the job payload models and
the dashboard's pages (their forms and the workflow graph drawing with them)."""

NOT_UNTIL_NEEDED = ("cryptography", "jwt", "jinja2", "croniter", "bcrypt", "tomllib")


def _serve_path(tmp_path: Path) -> list[str]:
    code = SERVE.format(database=f"sqlite:///{tmp_path / 'start.db'}")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    modules: list[str] = json.loads(out.stdout)
    return modules


def test_a_sqlite_node_builds_without_drivers_or_clients(tmp_path: Path) -> None:
    loaded = _serve_path(tmp_path)
    assert [m for m in NOT_FOR_SQLITE if m in loaded] == []


def test_a_node_without_keys_tokens_pages_schedules_passwords_or_config_file_loads_none(
    tmp_path: Path,
) -> None:
    loaded = _serve_path(tmp_path)
    assert [m for m in NOT_UNTIL_NEEDED if m in loaded] == []


def test_a_node_imports_pydantic_handlers_and_models_with_their_first_request(
    tmp_path: Path,
) -> None:
    loaded = _serve_path(tmp_path)
    assert [m for m in loaded if m.startswith(NOT_UNTIL_REQUESTED)] == []
