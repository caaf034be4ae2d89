"""Property-based conformance: schemathesis generates requests from /api/openapi.json and
sends them, signed in as an admin, to a real daemon on SQLite and on PostgreSQL (which
refuses what SQLite lets through, such as NUL characters in text). No response may be a
5xx, and every response must match the document (status, content type, headers, body
schema)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Daemons
from tests.services import PostgresDatabases, unavailable

pytestmark = [
    pytest.mark.slow,
    # Every operation of the document in one test: it grows with the API.
    pytest.mark.timeout(300),
    pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True, scope="module"),
]


@pytest.fixture(scope="module")
def database(
    request: pytest.FixtureRequest, _pg_databases: PostgresDatabases | str
) -> Iterator[str | None]:
    """The daemon's database URL: None for its default SQLite file, or a PostgreSQL
    database of this module's own, dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    if isinstance(_pg_databases, str):
        unavailable("PostgreSQL", _pg_databases)
        raise AssertionError("unreachable")
    url = asyncio.run(_pg_databases.create())
    yield url
    asyncio.run(_pg_databases.drop(url))


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, database: str | None
) -> Iterator[tuple[str, str]]:
    """A daemon with generous rate limits (429s would hide everything else) and its token."""
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    daemons = Daemons(workdir)
    daemon = daemons.start(
        env={
            "TASKFLOW_AUTH__API_LIMIT_PER_MIN": "1000000",
            "TASKFLOW_AUTH__LOGIN_LIMIT_PER_MIN": "100000",
            "TASKFLOW_AUTH__ALLOW_REGISTRATION": "false",
            "TASKFLOW_DATABASE": database,
        }
    )
    body = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
    request = urllib.request.Request(
        daemon.url("/api/v1/auth/login"),
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["accessToken"]
    try:
        yield daemon.url(""), token
    finally:
        daemons.close_all()


@pytest.fixture(scope="module")
def api_schema(live: tuple[str, str]) -> schemathesis.BaseSchema:
    base_url, _ = live
    return schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@pytest.mark.timeout(600)  # one test for every operation: it grows with the API
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_response_matches_the_document(
    case: schemathesis.Case, live: tuple[str, str]
) -> None:
    base_url, token = live
    # Schema-valid is not always acceptable: a cron expression or a time zone name
    # passes the document's string rules and is still refused (422) by the domain.
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance],
    )


def test_the_reference_page_lists_every_documented_path(live: tuple[str, str]) -> None:
    base_url, _ = live
    with urllib.request.urlopen(f"{base_url}/api/docs", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        page = response.read().decode()
    with urllib.request.urlopen(f"{base_url}/api/openapi.json", timeout=10) as response:
        document = json.load(response)
    for path in document["paths"]:
        assert f"<code>{path}</code>" in page
    assert "TaskCreate" in page
