"""The dashboard holds what people type to the API's rule for text: no NUL (U+0000),
which PostgreSQL cannot store or even look up. Checked over HTTP against a real daemon
on PostgreSQL: a 422 page naming the field, never a 500, and nothing stored. The tests
share one daemon and database (nothing they send is stored), each in a session of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, DaemonProcess, Daemons
from tests.e2e.dashboard.test_security import Browserless
from tests.services import PostgresDatabases, unavailable


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, _pg_databases: PostgresDatabases | str
) -> Iterator[DaemonProcess]:
    """One daemon on a PostgreSQL database of this module's own."""
    if isinstance(_pg_databases, str):
        unavailable("PostgreSQL", _pg_databases)
        raise AssertionError("unreachable")
    url = asyncio.run(_pg_databases.create())
    daemons = Daemons(tmp_path_factory.mktemp("nul-input"))
    try:
        yield daemons.start(env={"TASKFLOW_DATABASE": url})
    finally:
        daemons.close_all()
        asyncio.run(_pg_databases.drop(url))


@pytest.fixture
async def client(daemon: DaemonProcess) -> AsyncIterator[Browserless]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browserless(daemon, session)


async def page_of(client: Browserless, response: aiohttp.ClientResponse) -> str:
    text = await response.text()
    assert response.status == 422, text
    return text


async def test_a_sign_in_with_a_nul_is_refused(client: Browserless) -> None:
    status, _ = await client.sign_in(email="admin\u0000@example.com", password=ADMIN_PASSWORD)
    assert status == 422


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/executions?taskId=a%00b",
        "/dashboard/tasks?q=%00",
        "/dashboard/tasks?handler=echo%00",
    ],
)
async def test_a_query_with_a_nul_is_refused(client: Browserless, path: str) -> None:
    assert (await client.sign_in())[0] == 303
    async with client.http.get(client.url(path)) as response:
        assert "NUL" in await page_of(client, response)


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("name", "nul\u0000name", "The field name must not contain a NUL"),
        ("payload", '{"headers": {"x": "a\\u0000b"}}', "headers.x: must not contain"),
    ],
)
async def test_a_task_form_with_a_nul_is_refused_naming_the_field(
    client: Browserless, field: str, value: str, shown: str
) -> None:
    assert (await client.sign_in())[0] == 303
    token = await client.token_on("/dashboard/tasks/new")
    form = {
        "_csrf": token,
        "name": "nul-form-task",
        "type": "RECURRING",
        "cronExpression": "* * * * *",
        field: value,
    }
    async with client.http.post(
        client.url("/dashboard/tasks/new"),
        data=form,
        headers={"Origin": client.origin},
        allow_redirects=False,
    ) as response:
        assert shown in await page_of(client, response)
    async with client.http.get(client.url("/dashboard/tasks")) as listing:
        assert "nul-form-task" not in await listing.text()
