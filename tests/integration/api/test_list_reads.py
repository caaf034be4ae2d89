"""A list read answered again (from the node's page cache on SQLite, with the body and
ETag made once) still shows every change committed before it, and its ETag follows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api.conftest import Client, MakeClient, Session, sign_up
from tests.integration.engine.conftest import make_engine
from tests.integration.engine.harness import EngineFactory

__all__ = ["make_engine"]

TASKS = "/api/v1/tasks"
LIST = f"{TASKS}?limit=20"


@pytest.fixture
async def client(make_client: MakeClient, make_engine: EngineFactory) -> Client:
    engine = await make_engine()
    return await make_client(tasks=engine.tasks)


async def _list(client: Client, user: Session, **headers: str) -> tuple[int, str, list[Any]]:
    response = await client.get(LIST, headers={**user.headers, **headers})
    names = [t["name"] for t in (await response.json())["items"]] if response.status == 200 else []
    return response.status, response.headers["ETag"], names


async def _send(client: Client, user: Session, method: str, path: str, body: Any = None) -> Any:
    response = await client.request(method, path, json=body, headers=user.headers)
    assert response.status in (200, 201, 204), await response.text()
    return await response.json() if response.status != 204 else None


async def test_a_repeated_list_shows_each_change_made_before_it(client: Client) -> None:
    user = await sign_up(client, "lister@example.com")
    first = await _send(client, user, "POST", TASKS, {"name": "one", "type": "ON_DEMAND"})
    status, etag, names = await _list(client, user)
    assert (status, names) == (200, ["one"])
    assert await _list(client, user) == (200, etag, ["one"])
    assert (await _list(client, user, **{"If-None-Match": etag}))[:2] == (304, etag)

    await _send(client, user, "POST", TASKS, {"name": "two", "type": "ON_DEMAND"})
    status, created, names = await _list(client, user, **{"If-None-Match": etag})
    assert (status, names) == (200, ["two", "one"])
    assert created != etag

    await _send(client, user, "PATCH", f"{TASKS}/{first['id']}", {"name": "renamed"})
    status, renamed, names = await _list(client, user, **{"If-None-Match": created})
    assert (status, names) == (200, ["two", "renamed"])

    await _send(client, user, "DELETE", f"{TASKS}/{first['id']}")
    status, _, names = await _list(client, user, **{"If-None-Match": renamed})
    assert (status, names) == (200, ["two"])
