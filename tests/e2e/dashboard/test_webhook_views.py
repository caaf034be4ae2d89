"""The Webhooks pages over HTTP against a real daemon, with a real receiver on loopback:
who may see and use them, CSRF and origin checks, the secret shown once, the delivery
log of real deliveries with redeliver, and the audit events every action writes (the
same as through the API)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DaemonProcess, Daemons, eventually
from tests.e2e.dashboard.receiver import DELIVERING_ENV, PATH, Answers
from tests.integration.webhooks.receiver import verified_by

HOOKS = "/dashboard/webhooks"
PASSWORD = "hooks-password-1"
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')
_SECRET = re.compile(r'id="new-secret"[^>]*>(whsec_[^<]+)<')
_ROW = re.compile(r'<tr data-delivery-id="([^"]+)" data-status="([A-Z]+)">(.*?)</tr>', re.S)

ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture(scope="module")
def hooks_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module (each test signs up users of its own), allowed to
    deliver to loopback, retrying fast."""
    daemons = Daemons(tmp_path_factory.mktemp("webhook-views"))
    try:
        yield daemons.start(env=DELIVERING_ENV)
    finally:
        daemons.close_all()


class Person:
    """One signed-in dashboard session, posting forms as the pages do."""

    def __init__(
        self,
        daemon: DaemonProcess,
        http: aiohttp.ClientSession,
        email: str,
        password: str = PASSWORD,
    ) -> None:
        self.daemon = daemon
        self.http = http
        self.email = email
        self.password = password
        self.origin = daemon.url("").rstrip("/")

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.daemon.url(path), allow_redirects=False) as response:
            return response.status, await response.text()

    async def csrf(self) -> str:
        _, page = await self.get("/dashboard/profile")
        found = _CSRF.search(page)
        assert found is not None
        return found.group(1)

    async def post(
        self,
        path: str,
        fields: Sequence[tuple[str, str]] = (),
        *,
        csrf: bool = True,
        origin: str | None = None,
    ) -> tuple[int, str, str]:
        """(status, Location, page) of a form post with this session's CSRF token."""
        data = [*fields, *((("_csrf", await self.csrf()),) if csrf else ())]
        headers = {"Origin": origin or self.origin}
        async with self.http.post(
            self.daemon.url(path), data=data, headers=headers, allow_redirects=False
        ) as response:
            return response.status, response.headers.get("Location", ""), await response.text()

    async def follow(self, path: str, fields: Sequence[tuple[str, str]] = ()) -> str:
        """Post, expect a redirect, and return the page it leads to (with its flash)."""
        status, location, page = await self.post(path, fields)
        assert status == 303, page
        status, page = await self.get(location)
        assert status == 200, page
        return page

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as fresh:
            login = {"email": self.email, "password": self.password}
            async with fresh.post(self.daemon.url("/api/v1/auth/login"), json=login) as r:
                token = (await r.json())["accessToken"]
            headers = {"Authorization": f"Bearer {token}"}
            async with fresh.request(
                method, self.daemon.url(path), json=body, headers=headers
            ) as response:
                return response.status, await response.json(content_type=None)


@pytest.fixture
async def people(hooks_daemon: DaemonProcess) -> AsyncIterator[Callable[[str], Awaitable[Person]]]:
    """`person(name)`: a new user (OWNER of a personal org), or with "admin" the site
    admin, signed in to the dashboard."""
    sessions: list[aiohttp.ClientSession] = []

    async def person(name: str) -> Person:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        if name == "admin":
            email, password = ADMIN_EMAIL, ADMIN_PASSWORD
        else:
            email, password = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com", PASSWORD
            body = {"email": email, "password": password, "firstName": name, "lastName": "T"}
            async with http.post(hooks_daemon.url("/api/v1/auth/register"), json=body) as r:
                assert r.status == 201, await r.text()
        async with http.get(hooks_daemon.url("/dashboard/login")) as r:
            token = re.search(r'name="login_token" value="([^"]+)"', await r.text())
        assert token is not None
        form = {"login_token": token.group(1), "email": email, "password": password, "next": ""}
        origin = {"Origin": hooks_daemon.url("").rstrip("/")}
        async with http.post(
            hooks_daemon.url("/dashboard/login"), data=form, headers=origin, allow_redirects=False
        ) as r:
            assert r.status == 303, await r.text()
        return Person(hooks_daemon, http, email, password)

    yield person
    for http in sessions:
        await http.close()


@pytest.fixture
async def receiver(aiohttp_server: ServerFactory) -> tuple[Answers, str]:
    """A real receiver on 127.0.0.1 and its URL."""
    answers = Answers()
    server = await aiohttp_server(answers.app(), host="127.0.0.1")
    return answers, str(server.make_url(PATH))


def create_form(url: str, *events: str, **fields: str) -> list[tuple[str, str]]:
    return [("url", url), *(("events", e) for e in events), *fields.items()]


async def create(person: Person, url: str, *events: str) -> tuple[str, str]:
    """Create an endpoint through the page; (its id, the secret the answer showed)."""
    status, _, page = await person.post(HOOKS, create_form(url, *events, description="ci"))
    assert status == 200, page
    secret = _SECRET.search(page)
    endpoint = re.search(r'href="/dashboard/webhooks/([0-9a-f-]{36})" id="secret-done"', page)
    assert secret is not None and endpoint is not None, page
    return endpoint.group(1), secret.group(1)


async def actions(person: Person, endpoint_id: str) -> list[str]:
    status, trail = await person.api("GET", f"/api/v1/audit?targetId={endpoint_id}")
    assert status == 200, trail
    return [e["action"] for e in reversed(trail["items"])]


async def test_only_owners_and_admins_have_the_pages(people: Any) -> None:
    owner, member, viewer = await people("Olga"), await people("Mike"), await people("Vera")
    _, orgs = await owner.api("GET", "/api/v1/orgs")
    org_id = orgs["items"][0]["id"]
    for who, role in ((member, "MEMBER"), (viewer, "VIEWER")):
        body = {"email": who.email, "role": role}
        status, _ = await owner.api("POST", f"/api/v1/orgs/{org_id}/members", body)
        assert status == 201
    endpoint_id, _ = await create(owner, "https://example.com/olga", "task.created")
    _, page = await owner.get("/dashboard/")
    assert 'href="/dashboard/webhooks"' in page

    for who in (member, viewer):
        page = await who.follow("/dashboard/org/switch", [("org", org_id), ("next", "/dashboard/")])
        assert "Now working in" in page
        assert 'href="/dashboard/webhooks"' not in page
        for path in (HOOKS, f"{HOOKS}/{endpoint_id}"):
            status, text = await who.get(path)
            assert status == 403, path
            assert "owners and admins" in text
        for path in (HOOKS, f"{HOOKS}/{endpoint_id}/delete", f"{HOOKS}/{endpoint_id}/test"):
            status, _, _ = await who.post(path, create_form("https://example.com/x", "*"))
            assert status == 403, path
    _, listed = await owner.api("GET", "/api/v1/webhooks")
    assert [e["id"] for e in listed["items"]] == [endpoint_id]
    assert await actions(owner, endpoint_id) == ["webhook.created"]

    # Someone else's endpoint is missing, not forbidden, even to an OWNER.
    stranger = await people("Sam")
    assert (await stranger.get(f"{HOOKS}/{endpoint_id}"))[0] == 404
    page = await stranger.follow(f"{HOOKS}/{endpoint_id}/delete")
    assert "That endpoint was already deleted." in page
    assert (await owner.get(f"{HOOKS}/{endpoint_id}"))[0] == 200


async def test_a_site_admin_sees_every_org_and_adds_to_the_chosen_one(people: Any) -> None:
    owner, admin = await people("Otto"), await people("admin")
    endpoint_id, _ = await create(owner, "https://example.com/otto", "*")
    status, page = await admin.get(HOOKS)
    assert status == 200 and f'data-webhook-id="{endpoint_id}"' in page
    assert 'id="choose-org"' in page and 'id="webhook-form"' not in page
    page = await admin.follow(HOOKS, create_form("https://example.com/admin", "*"))
    assert "Choose the organization the endpoint is for" in page
    _, orgs = await owner.api("GET", "/api/v1/orgs")
    org_id = orgs["items"][0]["id"]
    await admin.follow("/dashboard/org/switch", [("org", org_id), ("next", HOOKS)])
    admins_id, _ = await create(admin, "https://example.com/admin", "*")
    _, listed = await owner.api("GET", "/api/v1/webhooks")
    assert {e["id"] for e in listed["items"]} == {endpoint_id, admins_id}
    page = await admin.follow(f"{HOOKS}/{endpoint_id}/disable")
    assert "The endpoint is disabled." in page


async def test_changes_need_the_csrf_token_and_this_origin(people: Any) -> None:
    owner = await people("Cora")
    form = create_form("https://example.com/sneaky", "*")
    status, _, _ = await owner.post(HOOKS, form, csrf=False)
    assert status == 403
    status, _, _ = await owner.post(HOOKS, form, origin="https://evil.example")
    assert status == 403
    _, listed = await owner.api("GET", "/api/v1/webhooks")
    assert listed["items"] == []
    endpoint_id, _ = await create(owner, "https://example.com/real", "*")
    status, _, _ = await owner.post(f"{HOOKS}/{endpoint_id}/delete", csrf=False)
    assert status == 403
    assert (await owner.get(f"{HOOKS}/{endpoint_id}"))[0] == 200


async def test_the_secret_is_shown_once_and_bad_input_is_named(
    people: Any, hooks_daemon: DaemonProcess
) -> None:
    owner = await people("Ida")
    status, _, page = await owner.post(HOOKS, create_form("ftp://example.com/x"))
    assert status == 422
    assert 'href="#f-url"' in page and 'href="#f-events"' in page
    assert "must be an absolute http or https URL" in html.unescape(page)
    assert 'value="ftp://example.com/x"' in page  # what was typed stays
    status, _, page = await owner.post(
        HOOKS, create_form("https://example.com/x", "*", taskId="no-such-task")
    )
    assert status == 422 and "no such task in this organization" in page

    endpoint_id, secret = await create(owner, "https://example.com/ida", "execution.failed")
    assert secret.startswith("whsec_")
    for path in (HOOKS, f"{HOOKS}/{endpoint_id}"):
        status, page = await owner.get(path)
        assert status == 200 and secret not in page
    _, page = await owner.get(HOOKS)
    assert "https://example.com/ida" in page and "execution.failed" in page
    assert "none yet" in page

    status, _, rotated_page = await owner.post(f"{HOOKS}/{endpoint_id}/rotate-secret")
    rotated = _SECRET.search(rotated_page)
    assert status == 200 and rotated is not None and rotated.group(1) != secret
    assert "signed with the old secret as well" in rotated_page
    assert rotated.group(1) not in (await owner.get(f"{HOOKS}/{endpoint_id}"))[1]
    assert secret not in hooks_daemon.stderr and rotated.group(1) not in hooks_daemon.stderr
    _, trail = await owner.api("GET", f"/api/v1/audit?targetId={endpoint_id}")
    assert "whsec_" not in str(trail)
    created = trail["items"][-1]
    assert created["action"] == "webhook.created"
    assert created["actor"]["email"] == owner.email and created["ip"] == "127.0.0.1"
    assert created["changes"]["url"] == [None, "https://example.com/ida"]
    assert await actions(owner, endpoint_id) == ["webhook.created", "webhook.secret_rotated"]


async def test_disable_enable_and_delete(people: Any) -> None:
    owner = await people("Dana")
    endpoint_id, _ = await create(owner, "https://example.com/dana", "*")
    here = f"{HOOKS}/{endpoint_id}"
    page = await owner.follow(f"{here}/disable")
    assert "The endpoint is disabled." in page and "disabled by a user" in page
    assert 'id="test-webhook"' not in page and 'id="enable-webhook"' in page
    _, listed = await owner.get(HOOKS)
    assert 'data-status="DISABLED"' in listed and "disabled by a user" in listed
    page = await owner.follow(f"{here}/test")
    assert "The webhook is disabled; enable it before testing it." in page
    page = await owner.follow(f"{here}/enable")
    assert "The endpoint is enabled." in page and 'data-status="ACTIVE"' in page

    page = await owner.follow(f"{here}/delete")
    assert "Deleted the endpoint https://example.com/dana" in html.unescape(page)
    assert (await owner.get(here))[0] == 404
    page = await owner.follow(f"{here}/delete")
    assert "That endpoint was already deleted." in page
    assert await actions(owner, endpoint_id) == [
        "webhook.created",
        "webhook.updated",
        "webhook.updated",
        "webhook.deleted",
    ]


async def delivery_rows(person: Person, endpoint_id: str) -> list[tuple[str, str, str]]:
    _, page = await person.get(f"{HOOKS}/{endpoint_id}")
    return [(m.group(1), m.group(2), m.group(3)) for m in _ROW.finditer(page)]


async def test_the_log_shows_real_deliveries_and_redelivers(
    people: Any, receiver: tuple[Answers, str]
) -> None:
    """A receiver that answers 410 with a long body: the log keeps its first KiB and the
    endpoint is disabled with the reason; enabled again, redeliver sends the same message."""
    answers, url = receiver
    long_answer = "é" + "x" * 3000
    answers.planned.append((410, long_answer))
    owner = await people("Rita")
    endpoint_id, secret = await create(owner, url, "task.created")
    page = await owner.follow(f"{HOOKS}/{endpoint_id}/test")
    assert "Sent a ping event" in page

    async def settled(status: str) -> list[tuple[str, str, str]] | None:
        rows = await delivery_rows(owner, endpoint_id)
        return rows if rows and rows[0][1] == status else None

    rows = await eventually(lambda: settled("FAILED"), "the 410 to be in the log")
    delivery_id, _, cells = rows[0]
    assert re.search(r'data-cell="code">410<', cells)
    assert re.search(r'data-cell="attempts">1<', cells)
    body = re.search(r'data-cell="body">(.*?)</pre>', cells, re.S)
    assert body is not None and html.unescape(body.group(1)) == long_answer[:1024]
    _, page = await owner.get(f"{HOOKS}/{endpoint_id}")
    assert 'id="disabled-reason"' in page and "410 Gone" in page
    _, listed = await owner.get(HOOKS)
    assert 'data-cell="last"><span class="badge badge-bad" data-status="FAILED">' in listed
    assert "410 Gone" in listed

    await owner.follow(f"{HOOKS}/{endpoint_id}/enable")
    page = await owner.follow(f"{HOOKS}/{endpoint_id}/deliveries/{delivery_id}/redeliver")
    assert "Sending the delivery again, with the same webhook-id." in page
    rows = await eventually(lambda: settled("SUCCEEDED"), "the redelivery to succeed")
    assert rows[0][0] == delivery_id
    assert re.search(r'data-cell="code">200<', rows[0][2])
    assert re.search(r'data-cell="attempts">2<', rows[0][2])
    first, second = answers.received()
    assert first.message["type"] == "ping" and first.message["data"]["webhookId"] == endpoint_id
    assert first.webhook_id == second.webhook_id
    assert verified_by(secret, first) and verified_by(secret, second)
    _, listed = await owner.get(HOOKS)
    assert 'data-cell="last"><span class="badge badge-ok" data-status="SUCCEEDED">' in listed
    assert await actions(owner, endpoint_id) == [
        "webhook.created",
        "webhook.tested",
        "webhook.disabled",
        "webhook.updated",
        "webhook.redelivered",
    ]


async def test_a_live_read_of_a_page_leaves_its_flash_to_the_page_shown_next(people: Any) -> None:
    """A page that reads itself again for its live parts (live.js, X-Taskflow-Live) while
    the browser follows a redirect does not take the redirect's flash message: the page
    the browser shows next still has it (the workflow page's live refresh once took the
    "Retrying" message of its own retry button)."""
    owner = await people("Lina")
    status, location, _ = await owner.post(f"{HOOKS}/{uuid.uuid4()}/delete")
    assert status == 303
    live = {"X-Taskflow-Live": "1", "Accept": "text/html"}
    async with owner.http.get(owner.daemon.url(location), headers=live) as response:
        assert response.status == 200
        assert "That endpoint was already deleted." not in await response.text()
    status, page = await owner.get(location)
    assert status == 200
    assert "That endpoint was already deleted." in page
