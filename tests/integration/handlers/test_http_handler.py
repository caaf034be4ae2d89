"""The http handler against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from taskflowd.handlers.base import JobContext, JobError
from taskflowd.handlers.http import HttpHandler
from taskflowd.handlers.ssrf import AddressPolicy

ServerFactory = Callable[..., Awaitable[TestServer]]
CAP = 4096
DELIVERY_HEADERS = ("X-Taskflow-Delivery-Id", "X-Taskflow-Execution-Id", "X-Taskflow-Attempt")


def make_ctx() -> JobContext:
    return JobContext("exec-1", "task-1", 1, "exec-1:1", logging.getLogger("test"))


async def json_ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def text(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def status(request: web.Request) -> web.Response:
    headers = {}
    if "retry_after" in request.query:
        headers["Retry-After"] = request.query["retry_after"]
    return web.Response(status=int(request.match_info["code"]), headers=headers, text="no")


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "contentType": request.headers.get("Content-Type"),
            "authorization": request.headers.get("Authorization"),
            "xTest": request.headers.get("X-Test"),
            "body": (await request.read()).decode(),
        }
    )


async def delivery(request: web.Request) -> web.Response:
    return web.json_response(
        {name: request.headers.getall(name, []) for name in DELIVERY_HEADERS},
    )


async def redirect(request: web.Request) -> web.Response:
    code = int(request.query.get("code", "302"))
    return web.Response(status=code, headers={"Location": request.query["to"]})


async def loop(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/loop"})


async def big_streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(64):
        await response.write(b"x" * 1024)
    await response.write_eof()
    return response


async def big_declared(request: web.Request) -> web.Response:
    return web.Response(body=b"y" * (CAP + 1))


async def exactly_cap(request: web.Request) -> web.Response:
    return web.Response(body=b"z" * CAP)


async def hang(request: web.Request) -> web.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> TestServer:
    app = web.Application()
    app.router.add_get("/json", json_ok)
    app.router.add_get("/text", text)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/delivery", delivery)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big-streamed", big_streamed)
    app.router.add_get("/big-declared", big_declared)
    app.router.add_get("/exactly-cap", exactly_cap)
    app.router.add_get("/hang", hang)
    return await aiohttp_server(app, host="127.0.0.1")


def local_handler(timeout_s: float) -> HttpHandler:
    policy = AddressPolicy.from_config(allow_private=False, allowed_networks=["127.0.0.1/32"])
    return HttpHandler(policy=policy, timeout_s=timeout_s, max_response_bytes=CAP)


@pytest.fixture
async def handler() -> AsyncIterator[HttpHandler]:
    h = local_handler(timeout_s=30.0)
    yield h
    await h.close()


def url(server: TestServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def fails(handler: HttpHandler, payload: dict[str, object]) -> JobError:
    assert handler.validate(payload) == [] or "url" in payload  # literal refusals excepted
    with pytest.raises(JobError) as caught:
        await handler.run(payload, make_ctx())
    return caught.value


async def test_json_response(handler: HttpHandler, server: TestServer) -> None:
    result = await handler.run({"url": url(server, "/json")}, make_ctx())
    assert result["status"] == 200
    assert result["headers"]["content-type"].startswith("application/json")
    assert result["body"] == {"ok": True}


async def test_text_response(handler: HttpHandler, server: TestServer) -> None:
    result = await handler.run({"url": url(server, "/text")}, make_ctx())
    assert result["body"] == "hello"
    assert result["headers"]["content-type"].startswith("text/plain")


async def test_json_and_text_bodies_and_headers_are_sent(
    handler: HttpHandler, server: TestServer
) -> None:
    sent = await handler.run(
        {
            "url": url(server, "/echo"),
            "method": "POST",
            "body": {"a": 1},
            "headers": {"X-Test": "1"},
        },
        make_ctx(),
    )
    assert sent["body"] == {
        "method": "POST",
        "contentType": "application/json",
        "authorization": None,
        "xTest": "1",
        "body": '{"a":1}',
    }
    sent = await handler.run(
        {"url": url(server, "/echo"), "method": "PUT", "body": "hi"}, make_ctx()
    )
    assert sent["body"]["contentType"] == "text/plain; charset=utf-8"
    assert sent["body"]["body"] == "hi"


async def test_each_request_names_its_delivery_execution_and_attempt(
    handler: HttpHandler, server: TestServer
) -> None:
    ctx = JobContext("exec-7", "task-1", 3, "exec-7:3", logging.getLogger("test"))
    expected = {
        "X-Taskflow-Delivery-Id": ["exec-7:3"],
        "X-Taskflow-Execution-Id": ["exec-7"],
        "X-Taskflow-Attempt": ["3"],
    }
    direct = await handler.run({"url": url(server, "/delivery"), "method": "POST"}, ctx)
    assert direct["body"] == expected
    # A redirect hop is the same delivery.
    hop = await handler.run({"url": url(server, "/redirect?to=/delivery")}, ctx)
    assert hop["body"] == expected


@pytest.mark.parametrize("name", [*DELIVERY_HEADERS, "x-taskflow-delivery-id"])
async def test_a_payload_cannot_set_the_delivery_headers(
    handler: HttpHandler, server: TestServer, name: str
) -> None:
    payload = {"url": url(server, "/delivery"), "headers": {name: "chosen"}}
    [error] = handler.validate(payload)
    assert error.field == "payload.headers"
    assert "set by taskflowd" in error.message
    refused = await fails(handler, payload)
    assert refused.error_type == "invalid_payload"


async def test_expected_status_other_than_2xx_succeeds(
    handler: HttpHandler, server: TestServer
) -> None:
    result = await handler.run(
        {"url": url(server, "/status/404"), "expectStatus": [404, 410]}, make_ctx()
    )
    assert result["status"] == 404
    assert result["body"] == "no"


async def test_unexpected_success_status_fails_for_good(
    handler: HttpHandler, server: TestServer
) -> None:
    error = await fails(handler, {"url": url(server, "/json"), "expectStatus": 201})
    assert (error.error_type, error.retryable) == ("http_status", False)
    assert "200" in str(error)


async def test_404_fails_for_good(handler: HttpHandler, server: TestServer) -> None:
    error = await fails(handler, {"url": url(server, "/status/404")})
    assert (error.error_type, error.retryable, error.retry_after_s) == ("http_status", False, None)


@pytest.mark.parametrize(
    ("code", "retry_after", "expected"),
    [(503, "120", 120.0), (429, "7", 7.0), (408, None, None), (500, None, None)],
)
async def test_server_trouble_is_retryable(
    handler: HttpHandler,
    server: TestServer,
    code: int,
    retry_after: str | None,
    expected: float | None,
) -> None:
    path = f"/status/{code}" + (f"?retry_after={retry_after}" if retry_after else "")
    error = await fails(handler, {"url": url(server, path)})
    assert (error.error_type, error.retryable) == ("http_status", True)
    assert error.retry_after_s == expected


async def test_redirects_are_followed(handler: HttpHandler, server: TestServer) -> None:
    result = await handler.run({"url": url(server, "/redirect?to=/json")}, make_ctx())
    assert result["body"] == {"ok": True}


async def test_303_turns_a_post_into_a_get(handler: HttpHandler, server: TestServer) -> None:
    result = await handler.run(
        {"url": url(server, "/redirect?code=303&to=/echo"), "method": "POST", "body": [1]},
        make_ctx(),
    )
    assert result["body"]["method"] == "GET"
    assert result["body"]["body"] == ""
    assert result["body"]["contentType"] is None


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    handler: HttpHandler, server: TestServer
) -> None:
    headers = {"Authorization": "Bearer secret", "X-Test": "kept"}
    same = await handler.run(
        {"url": url(server, "/redirect?to=/echo"), "headers": headers}, make_ctx()
    )
    assert same["body"]["authorization"] == "Bearer secret"
    other_origin = f"http://localhost:{server.port}/echo"  # same server, another origin
    other = await handler.run(
        {"url": url(server, f"/redirect?to={other_origin}"), "headers": headers}, make_ctx()
    )
    assert other["body"]["authorization"] is None
    assert other["body"]["xTest"] == "kept"


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2:{port}/json",  # loopback, but not the allowed network
        "http://[::1]:{port}/json",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_to_a_refused_destination_is_blocked(
    handler: HttpHandler, server: TestServer, target: str
) -> None:
    location = target.format(port=server.port)
    error = await fails(handler, {"url": url(server, "/redirect?to=" + location)})
    assert (error.error_type, error.retryable) == ("ssrf_blocked", False)


async def test_a_redirect_to_an_expected_status_is_not_followed(
    handler: HttpHandler, server: TestServer
) -> None:
    result = await handler.run(
        {"url": url(server, "/redirect?to=http://169.254.169.254/"), "expectStatus": 302},
        make_ctx(),
    )
    assert result["status"] == 302


async def test_endless_redirects_stop(handler: HttpHandler, server: TestServer) -> None:
    error = await fails(handler, {"url": url(server, "/loop")})
    assert (error.error_type, error.retryable) == ("too_many_redirects", False)


@pytest.mark.parametrize("path", ["/big-streamed", "/big-declared"])
async def test_a_body_over_the_cap_fails(
    handler: HttpHandler, server: TestServer, path: str
) -> None:
    error = await fails(handler, {"url": url(server, path)})
    assert (error.error_type, error.retryable) == ("response_too_large", False)


async def test_a_body_of_exactly_the_cap_is_fine(handler: HttpHandler, server: TestServer) -> None:
    result = await handler.run({"url": url(server, "/exactly-cap")}, make_ctx())
    assert len(result["body"]) == CAP


async def test_head_has_no_body(handler: HttpHandler, server: TestServer) -> None:
    result = await handler.run({"url": url(server, "/text"), "method": "HEAD"}, make_ctx())
    assert (result["status"], result["body"]) == (200, "")


async def test_a_hostname_resolving_to_an_allowed_address_works(
    handler: HttpHandler, server: TestServer
) -> None:
    # localhost may also resolve to ::1; the guard drops that answer and keeps 127.0.0.1.
    result = await handler.run({"url": f"http://localhost:{server.port}/json"}, make_ctx())
    assert result["body"] == {"ok": True}


async def test_without_the_allowance_loopback_is_refused(server: TestServer) -> None:
    strict = HttpHandler()
    try:
        for target in (url(server, "/json"), f"http://localhost:{server.port}/json"):
            with pytest.raises(JobError) as caught:
                await strict.run({"url": target}, make_ctx())
            assert (caught.value.error_type, caught.value.retryable) == ("ssrf_blocked", False)
        # The literal is caught at creation already; the name only when resolved.
        assert strict.validate({"url": url(server, "/json")}) != []
        assert strict.validate({"url": f"http://localhost:{server.port}/json"}) == []
    finally:
        await strict.close()


async def test_connection_refused_is_retryable(handler: HttpHandler) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        error = await fails(handler, {"url": f"http://127.0.0.1:{port}/"})
    assert (error.error_type, error.retryable) == ("connection", True)


async def test_a_server_that_never_answers_times_out(server: TestServer) -> None:
    impatient = local_handler(timeout_s=0.2)
    try:
        error = await fails(impatient, {"url": url(server, "/hang")})
    finally:
        await impatient.close()
    assert (error.error_type, error.retryable) == ("http_timeout", True)


@pytest.mark.parametrize("host", ["0x7f.1", "2130706433", "127.1", "[::ffff:127.0.0.1]"])
async def test_numeric_spellings_of_loopback_never_connect(server: TestServer, host: str) -> None:
    strict = HttpHandler()
    try:
        with pytest.raises(JobError) as caught:
            await strict.run({"url": f"http://{host}:{server.port}/json"}, make_ctx())
    finally:
        await strict.close()
    assert caught.value.error_type in {"ssrf_blocked", "invalid_url"}
    assert caught.value.retryable is False
