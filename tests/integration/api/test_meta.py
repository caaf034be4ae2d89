"""Cross-cutting behaviour: health, problem responses, request ids, headers, OpenAPI."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web

from taskflowd.api.openapi import Access, ApiRegistry, Operation
from tests.integration.api.conftest import Client, MakeClient, assert_problem

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def explode(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals: password=hunter2 at /srv/app.py")


def install_explode(api: ApiRegistry) -> None:
    api.add(Operation("GET", "/test/explode", explode, "Always fails", "test", Access.PUBLIC))


def assert_security_headers(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["Server"] == "taskflowd"
    assert response.headers["X-Request-Id"]


async def test_health(client: Client) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert_security_headers(response)


async def test_unknown_route_is_a_problem(client: Client) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert_problem(await response.json(), 404, "not_found")
    assert_security_headers(response)


async def test_wrong_method_is_a_problem_with_allow(client: Client) -> None:
    response = await client.delete("/health")
    assert response.status == 405
    assert response.content_type == "application/problem+json"
    assert "GET" in response.headers["Allow"]
    assert_problem(await response.json(), 405, "method_not_allowed")


async def test_unexpected_error_is_an_opaque_500(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(extra_routes=[install_explode])
    with caplog.at_level(logging.ERROR, logger="taskflowd.api"):
        response = await client.get("/test/explode", headers={"X-Request-Id": "req-500"})
    assert response.status == 500
    assert_security_headers(response)
    text = await response.text()
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text
    body = await response.json(content_type="application/problem+json")
    assert_problem(body, 500, "internal_error")
    assert body["requestId"] == "req-500"
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


async def test_request_id_is_echoed_when_well_formed(client: Client) -> None:
    response = await client.get("/health", headers={"X-Request-Id": "abc-123_x.y"})
    assert response.headers["X-Request-Id"] == "abc-123_x.y"


@pytest.mark.parametrize("incoming", [None, "has space", "x" * 65, "bad/char", ""])
async def test_request_id_is_generated_otherwise(client: Client, incoming: str | None) -> None:
    headers = {} if incoming is None else {"X-Request-Id": incoming}
    response = await client.get("/api/v1/nothing", headers=headers)
    generated = response.headers["X-Request-Id"]
    assert generated and generated != incoming
    assert (await response.json())["requestId"] == generated


async def test_no_server_version_banner(client: Client) -> None:
    for path in ("/health", "/nope"):
        response = await client.get(path)
        assert response.headers["Server"] == "taskflowd"


async def test_access_log_has_route_template_but_no_secrets(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="taskflowd.api.access"):
        await client.get(
            "/api/v1/users/some-id", headers={"Authorization": "Bearer sekrit-token-value"}
        )
    lines = [r for r in caplog.records if r.name == "taskflowd.api.access"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["route"] == "/api/v1/users/{id}"
    assert fields["method"] == "GET" and fields["status"] == 401
    assert fields["duration_ms"] >= 0
    assert "sekrit" not in repr(lines[0].__dict__)


async def test_access_log_names_other_methods_other(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="taskflowd.api.access"):
        response = await client.request("PURGE", "/api/v1/tasks")
    assert response.status >= 400
    lines = [r for r in caplog.records if r.name == "taskflowd.api.access"]
    assert [line.fields["method"] for line in lines] == ["OTHER"]  # type: ignore[attr-defined]
    assert "PURGE" not in repr(lines[0].__dict__)


async def test_successful_probes_are_logged_at_debug_only(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="taskflowd.api.access"):
        assert (await client.get("/health")).status == 200
        assert (await client.get("/api/openapi.json")).status == 200
    routes = [r.fields["route"] for r in caplog.records if r.name == "taskflowd.api.access"]  # type: ignore[attr-defined]
    assert routes == ["/api/openapi.json"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="taskflowd.api.access"):
        assert (await client.get("/health")).status == 200
    probes = [r for r in caplog.records if r.name == "taskflowd.api.access"]
    assert [(r.levelno, r.fields["route"]) for r in probes] == [(logging.DEBUG, "/health")]  # type: ignore[attr-defined]


async def test_a_client_that_hangs_up_mid_body_is_a_499_not_an_error(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Served as the daemon serves (taskflowd.api.server): a handler is not cancelled when
    # its client goes, reading the rest of the body fails instead.
    assert client.server.runner is not None
    client.server.runner.server.handler_cancellation = False  # type: ignore[union-attr]
    host, port = client.server.host, client.server.port
    assert port is not None
    with caplog.at_level(logging.INFO, logger="taskflowd.api"):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            b'{"email":'
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        async def logged() -> list[logging.LogRecord]:
            while True:
                lines = [r for r in caplog.records if r.name == "taskflowd.api.access"]
                if lines:
                    return lines
                await asyncio.sleep(0.01)

        lines = await asyncio.wait_for(logged(), 5)
    assert [line.fields["status"] for line in lines] == [499]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_api_responses_are_not_cached_by_default(client: Client) -> None:
    response = await client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x"})
    assert response.headers["Cache-Control"] == "no-store"


async def test_openapi_document(client: Client) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "taskflowd"
    for path in ("register", "login", "refresh", "logout", "me", "password"):
        assert f"/api/v1/auth/{path}" in doc["paths"]
    assert "/api/v1/users/{id}" in doc["paths"]
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    assert {"200", "400", "401", "413", "415", "422", "429", "500"} <= set(login["responses"])
    me = doc["paths"]["/api/v1/auth/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert {"200", "304", "401"} <= set(me["responses"])
    users = doc["paths"]["/api/v1/users/{id}"]["patch"]
    assert {"401", "403", "404", "422"} <= set(users["responses"])
    schemas = doc["components"]["schemas"]
    assert schemas["RegisterRequest"]["additionalProperties"] is False
    assert set(schemas["UserOut"]["properties"]) == {
        "id",
        "email",
        "firstName",
        "lastName",
        "role",
        "isActive",
        "createdAt",
        "updatedAt",
    }
    for operations in doc["paths"].values():
        for operation in operations.values():
            for ref in _refs(operation):
                assert ref.split("/")[-1] in doc["components"][ref.split("/")[-2]]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


async def test_cors_for_listed_origins_only(make_client: MakeClient) -> None:
    client = await make_client(http_cors_origins=("https://app.example",))
    preflight = await client.options(
        "/api/v1/auth/me",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    actual = await client.get("/api/v1/auth/me", headers={"Origin": "https://app.example"})
    assert actual.status == 401
    assert actual.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "RateLimit-Remaining" in actual.headers["Access-Control-Expose-Headers"]
    other = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    refused = await client.options(
        "/api/v1/auth/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status == 405
    assert "Access-Control-Allow-Origin" not in refused.headers
