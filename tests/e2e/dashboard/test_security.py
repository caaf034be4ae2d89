"""The dashboard's security properties, checked over HTTP against a real daemon (no
browser needed): cookie flags, CSP, CSRF, the cookie being useless on the bearer API,
login rate limiting, and the event stream's authentication and per-user filtering.

The tests share one daemon, each in a session of its own; the two that would disturb
the others (locking the admin out, watching every execution) get a daemon of their own."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DaemonProcess, Daemons

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
_TOKEN = re.compile(r'name="(?:login_token|_csrf)" value="([^"]+)"')


class Browserless:
    """An aiohttp session that behaves like the dashboard's own pages (Origin header)."""

    def __init__(self, daemon: DaemonProcess, session: aiohttp.ClientSession) -> None:
        self.daemon = daemon
        self.http = session
        self.origin = daemon.url("").rstrip("/")

    def url(self, path: str) -> str:
        return self.daemon.url(path)

    async def token_on(self, path: str) -> str:
        async with self.http.get(self.url(path)) as response:
            found = _TOKEN.search(await response.text())
        assert found is not None, f"no form token on {path}"
        return found.group(1)

    async def sign_in(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Any:
        token = await self.token_on("/dashboard/login")
        form = {"login_token": token, "email": email, "password": password, "next": ""}
        async with self.http.post(
            self.url("/dashboard/login"),
            data=form,
            headers={"Origin": self.origin},
            allow_redirects=False,
        ) as response:
            return response.status, response.headers.getall("Set-Cookie", [])

    async def api_token(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
        async with (
            aiohttp.ClientSession() as fresh,
            fresh.post(
                self.url("/api/v1/auth/login"), json={"email": email, "password": password}
            ) as response,
        ):
            assert response.status == 200
            return str((await response.json())["accessToken"])


@pytest.fixture
def dashboard_daemon(shared_daemon: DaemonProcess) -> DaemonProcess:
    return shared_daemon


@pytest.fixture
async def client(dashboard_daemon: DaemonProcess) -> AsyncIterator[Browserless]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browserless(dashboard_daemon, session)


@pytest.fixture
async def own_client(daemons: Daemons) -> AsyncIterator[Browserless]:
    """A client on a daemon of this test's own."""
    daemon = await daemons.astart()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browserless(daemon, session)


async def test_sign_in_sets_a_locked_down_session_cookie_and_pages_a_strict_csp(
    client: Browserless,
) -> None:
    status, cookies = await client.sign_in()
    assert status == 303
    session = next(c for c in cookies if c.startswith("taskflowd_session="))
    assert "HttpOnly" in session
    assert "SameSite=Strict" in session
    assert "Path=/" in session
    async with client.http.get(client.url("/dashboard/tasks")) as response:
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in await response.text()  # no inline script at all


async def test_the_session_cookie_does_not_open_the_bearer_api(client: Browserless) -> None:
    await client.sign_in()
    for path in ("/api/v1/tasks", "/api/v1/auth/me", "/api/v1/users"):
        async with client.http.get(client.url(path)) as response:
            assert response.status == 401, path


async def test_state_changes_need_the_csrf_token_and_this_origin(client: Browserless) -> None:
    await client.sign_in()
    form = {"name": "sneaky", "type": "RECURRING", "cronExpression": "* * * * *"}
    headers = {"Origin": client.origin}
    async with client.http.post(
        client.url("/dashboard/tasks/new"), data=form, headers=headers, allow_redirects=False
    ) as response:
        assert response.status == 403
    token = await client.token_on("/dashboard/tasks/new")
    evil = {"Origin": "https://evil.example"}
    async with client.http.post(
        client.url("/dashboard/tasks/new"),
        data={**form, "_csrf": token},
        headers=evil,
        allow_redirects=False,
    ) as response:
        assert response.status == 403
    async with client.http.post(
        client.url("/dashboard/tasks/new"),
        data={**form, "_csrf": token, "priority": "0", "maxRetries": "0", "backoffMs": "10"},
        headers=headers,
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()


async def test_sign_in_attempts_are_rate_limited(own_client: Browserless) -> None:
    client = own_client
    statuses = []
    for _ in range(12):
        token = await client.token_on("/dashboard/login")
        async with client.http.post(
            client.url("/dashboard/login"),
            data={"login_token": token, "email": ADMIN_EMAIL, "password": "wrong-password"},
            headers={"Origin": client.origin},
        ) as response:
            statuses.append(response.status)
            text = await response.text()
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429
    assert "Too many attempts" in text


async def test_static_files_are_cached_by_version(client: Browserless) -> None:
    async with client.http.get(client.url("/dashboard/login")) as response:
        page = await response.text()
    versioned = re.search(r'href="(/static/app\.css\?v=[0-9a-f]+)"', page)
    assert versioned is not None
    async with client.http.get(client.url(versioned.group(1))) as response:
        assert response.status == 200
        assert "immutable" in response.headers["Cache-Control"]
    async with client.http.get(client.url("/static/app.css")) as response:
        assert response.headers["Cache-Control"] == "no-cache"
    async with client.http.get(client.url("/static/../taskflowd.db")) as response:
        assert response.status == 404


async def _messages(ws: aiohttp.ClientWebSocketResponse, until: float) -> list[dict[str, Any]]:
    seen = []
    while time.monotonic() < until:
        try:
            message = await ws.receive_json(timeout=max(0.05, until - time.monotonic()))
        except TimeoutError:
            break
        seen.append(message)
    return seen


async def test_the_event_stream_needs_a_session_from_this_origin(client: Browserless) -> None:
    url = client.url("/api/v1/events")
    async with client.http.ws_connect(url, headers={"Origin": client.origin}) as ws:
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4401
    await client.sign_in()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.http.ws_connect(url, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    async with client.http.ws_connect(url, headers={"Origin": client.origin}) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["scope"] == "all"
        stats = await ws.receive_json(timeout=10)
        assert stats["type"] == "stats"
        assert len(stats["series"]["completed"]) == 60


async def test_a_user_hears_only_about_their_own_executions(own_client: Browserless) -> None:
    client = own_client
    admin_token = await client.api_token()
    async with client.http.post(
        client.url("/api/v1/auth/register"),
        json={
            "email": "u@example.com",
            "password": "user-password-1",
            "firstName": "U",
            "lastName": "Ser",
        },
    ) as response:
        assert response.status == 201
    user_token = await client.api_token("u@example.com", "user-password-1")
    await client.sign_in("u@example.com", "user-password-1")
    url = client.url("/api/v1/events")
    async with (
        client.http.ws_connect(url, headers={"Origin": client.origin}) as user_ws,
        aiohttp.ClientSession() as bearer_session,
        bearer_session.ws_connect(
            url, headers={"Authorization": f"Bearer {admin_token}"}
        ) as admin_ws,
    ):
        assert (await user_ws.receive_json(timeout=5))["scope"] == "own"
        assert (await admin_ws.receive_json(timeout=5))["scope"] == "all"
        ids = {}
        for name, token in (("admin's", admin_token), ("user's", user_token)):
            async with bearer_session.post(
                client.url("/api/v1/tasks"),
                json={"name": name, "handler": "echo"},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status == 201
                ids[name] = (await response.json())["id"]
        until = time.monotonic() + 5
        user_seen, admin_seen = await asyncio.gather(
            _messages(user_ws, until), _messages(admin_ws, until)
        )

    def task_ids(messages: list[dict[str, Any]]) -> set[str]:
        return {
            item["taskId"] for m in messages if m["type"] == "executions" for item in m["items"]
        }

    assert task_ids(user_seen) == {ids["user's"]}
    assert task_ids(admin_seen) == {ids["admin's"], ids["user's"]}
    user_items = [i for m in user_seen if m["type"] == "executions" for i in m["items"]]
    assert {i["status"] for i in user_items} <= {"PROCESSING", "COMPLETED"}
    assert any(i["status"] == "COMPLETED" and i["taskName"] == "user's" for i in user_items)


async def test_the_event_stream_carries_only_the_current_orgs_executions(
    client: Browserless,
) -> None:
    user = {"email": "o@example.com", "password": "user-password-1"}
    async with client.http.post(
        client.url("/api/v1/auth/register"), json={**user, "firstName": "O", "lastName": "Rg"}
    ) as response:
        assert response.status == 201
    token = await client.api_token(user["email"], user["password"])
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as api:
        async with api.post(
            client.url("/api/v1/orgs"), json={"name": "Side Team"}, headers=headers
        ) as response:
            assert response.status == 201
            side = (await response.json())["id"]
        await client.sign_in(user["email"], user["password"])
        client.http.cookie_jar.update_cookies(
            {"taskflowd_org": side}, response_url=URL(client.origin)
        )
        async with client.http.ws_connect(
            client.url("/api/v1/events"), headers={"Origin": client.origin}
        ) as ws:
            assert (await ws.receive_json(timeout=5))["scope"] == "own"
            ids = {}
            for name, org in (("home", None), ("side", side)):
                async with api.post(
                    client.url("/api/v1/tasks"),
                    json={"name": name, "handler": "echo"},
                    headers={**headers, **({"X-Taskflow-Org": org} if org else {})},
                ) as response:
                    assert response.status == 201
                    ids[name] = (await response.json())["id"]
            seen = await _messages(ws, time.monotonic() + 5)
    heard = {i["taskId"] for m in seen if m["type"] == "executions" for i in m["items"]}
    assert heard == {ids["side"]}
