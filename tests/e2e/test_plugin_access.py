"""Who may use a plugin handler: what its HandlerSpec says (admins only when it says
nothing, or is a bare callable), unless the operator's `handlers.admin_only` /
`handlers.open_to_users` say otherwise. Real plugins installed as distributions, real
daemons, a real USER."""

from __future__ import annotations

import hashlib
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DaemonProcess, Daemons
from tests.e2e.plugins import api_call, install_plugin, sign_in, sign_up, with_path
from tests.e2e.readme import code_blocks

PLUGIN = """
from taskflowd.domain.errors import FieldError
from taskflowd.handlers.base import HandlerSpec


async def shout(payload, ctx):
    return {"text": payload["text"].upper(), "attempt": ctx.attempt}


def check(payload):
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        return [FieldError("payload.text", "must be a string")]
    return []


open_spec = HandlerSpec("shout", shout, check, admin_only=False)
silent_spec = HandlerSpec("guarded", shout, check)


async def bare(payload, ctx):
    return payload
"""
ENTRY_POINTS = {"shout": "open_spec", "guarded": "silent_spec", "bare": "bare"}


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str | None]:
    root, _ = install_plugin(tmp_path / "site", PLUGIN, ENTRY_POINTS)
    return with_path(root)


def create(daemon: DaemonProcess, token: str, handler: str) -> tuple[int, Any]:
    payload = {"url": "https://example.com/"} if handler == "http" else {"text": "hi"}
    body = {"name": f"uses {handler}", "handler": handler, "payload": payload}
    return api_call(daemon, "POST", "/api/v1/tasks", token, body)


def wait_result(daemon: DaemonProcess, token: str, task_id: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, page = api_call(daemon, "GET", f"/api/v1/tasks/{task_id}/executions", token)
        assert status == 200, page
        done = [e for e in page["items"] if e["status"] == "COMPLETED"]
        if done:
            return done[0]["result"]
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never completed")


def test_a_plugin_decides_whether_users_may_use_it(
    daemons: Daemons, plugin_env: dict[str, str | None]
) -> None:
    daemon = daemons.start(env=plugin_env)
    user = sign_up(daemon, "user@example.com")

    status, task = create(daemon, user, "shout")
    assert status == 201, task
    assert wait_result(daemon, user, task["id"]) == {"text": "HI", "attempt": 1}
    for admins_only in ("guarded", "bare"):
        status, problem = create(daemon, user, admins_only)
        assert (status, problem["code"]) == (403, "forbidden"), admins_only
    assert create(daemon, sign_in(daemon), "guarded")[0] == 201


def test_the_operator_overrides_what_a_plugin_says(
    daemons: Daemons, plugin_env: dict[str, str | None]
) -> None:
    daemon = daemons.start(
        env={
            **plugin_env,
            "TASKFLOW_HANDLERS__OPEN_TO_USERS": "guarded",
            "TASKFLOW_HANDLERS__ADMIN_ONLY": "shout,http",
        }
    )
    user = sign_up(daemon, "user@example.com")

    assert create(daemon, user, "guarded")[0] == 201
    assert create(daemon, user, "bare")[0] == 403
    for admins_only in ("shout", "http"):
        assert create(daemon, user, admins_only)[0] == 403, admins_only


def test_the_readme_plugin_works_as_written(daemons: Daemons, tmp_path: Path) -> None:
    [project] = code_blocks("Handler plugins", "toml")
    [source] = code_blocks("Handler plugins", "python")
    entry_points = tomllib.loads(project)["project"]["entry-points"]["taskflowd.handlers"]
    module = entry_points["checksum"].split(":")[0]
    root, _ = install_plugin(tmp_path / "site", source, entry_points, module=module)
    daemon = daemons.start(env=with_path(root))
    user = sign_up(daemon, "user@example.com")

    payload = {"text": "hello", "algorithm": "sha512"}
    body = {"name": "checksum", "handler": "checksum", "payload": payload}
    status, task = api_call(daemon, "POST", "/api/v1/tasks", user, body)
    assert status == 201, task
    assert wait_result(daemon, user, task["id"]) == {
        "algorithm": "sha512",
        "hex": hashlib.sha512(b"hello").hexdigest(),
    }
    bad = {**body, "payload": {"text": 1, "algorithm": "md4"}}
    status, problem = api_call(daemon, "POST", "/api/v1/tasks", user, bad)
    assert status == 422, problem
    assert {e["field"] for e in problem["errors"]} == {"payload.text", "payload.algorithm"}
