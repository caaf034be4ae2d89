"""API keys and runs with a payload of their own, in the browser: a key is shown once,
works, and stops working when revoked; an on-demand task made through the form runs with
a payload typed on its page. The tests share one daemon (each makes its own records)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from taskflowd.auth.api_keys import MAX_KEYS_PER_USER
from tests.e2e.conftest import ADMIN_EMAIL, DaemonProcess
from tests.e2e.dashboard.conftest import Site

pytestmark = pytest.mark.browser
TASK_URL = re.compile(r".*/dashboard/tasks/[0-9a-f-]{36}$")


@pytest.fixture
def dashboard_daemon(shared_daemon: DaemonProcess) -> DaemonProcess:
    return shared_daemon


def status_within(site: Site, token: str, expected: int, timeout_s: float = 5.0) -> int:
    """The status of GET /api/v1/auth/me with `token`, polled until it is `expected`."""
    deadline = time.monotonic() + timeout_s
    status, _ = site.api("GET", "/api/v1/auth/me", token=token)
    while status != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        status, _ = site.api("GET", "/api/v1/auth/me", token=token)
    return status


def test_an_api_key_is_shown_once_works_and_stops_working_when_revoked(site: Site) -> None:
    page = site.new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    site.sign_in(page)
    page.click(".user-link")
    page.click("text=Manage API keys")
    page.wait_for_url("**/dashboard/api-keys")
    page.fill("#f-name", "   ")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#e-name")).to_contain_text("Name must be 1 to 100 printable characters")
    assert page.locator("#error-summary").is_visible()

    page.fill("#f-name", "deploy script")
    page.select_option("#f-expiresIn", "30")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#key-form button[type=submit]")
    assert answer.value.headers["cache-control"] == "no-store"
    expect(page.locator("#key-once")).to_contain_text("you will not see it again")
    key = page.inner_text("#new-key")
    assert re.fullmatch(r"tfk_[A-Za-z0-9_-]{43}", key)
    # Only this response carries it: not the address, not a cookie.
    assert key not in page.url
    assert all(key not in cookie["value"] for cookie in page.context.cookies())
    page.click("button[data-copy]")
    expect(page.locator(".toast")).to_contain_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == key

    status, me = site.api("GET", "/api/v1/auth/me", token=key)
    assert status == 200 and me["email"] == ADMIN_EMAIL

    page.click("text=Done")
    page.wait_for_url("**/dashboard/api-keys")
    assert key not in page.content()
    row = page.locator("#keys-table tbody tr", has_text="deploy script")
    expect(row.locator("td[data-label='Key']")).to_have_text(f"{key[:12]}…")
    expect(row.locator("td[data-label='Expires'] time")).to_have_count(1)
    expect(row.locator("td[data-label='Last used'] time")).to_have_count(1)
    row.locator("button", has_text="Revoke").click()
    page.click("#confirm-ok")
    expect(page.locator("[data-flash]")).to_contain_text("Revoked “deploy script”")
    expect(page.locator("#keys-table tbody tr", has_text="deploy script")).to_have_count(0)
    assert status_within(site, key, 401) == 401
    assert key not in site.daemon.stderr


def test_a_user_sees_only_their_own_keys_and_is_told_when_there_are_too_many(
    site: Site,
) -> None:
    status, admin_key = site.api(
        "POST", "/api/v1/api-keys", {"name": "admin automation"}, token=site.token()
    )
    assert status == 201
    user = {"email": "kim@example.com", "password": "kim-password-123"}
    status, _ = site.api(
        "POST", "/api/v1/auth/register", {**user, "firstName": "Kim", "lastName": "Lee"}
    )
    assert status == 201
    token = site.token(user["email"], user["password"])
    for n in range(MAX_KEYS_PER_USER):
        status, _ = site.api("POST", "/api/v1/api-keys", {"name": f"worker {n}"}, token=token)
        assert status == 201
    page = site.new_page()
    site.sign_in(page, user["email"], user["password"])
    page.goto("/dashboard/api-keys")
    rows = page.locator("#keys-table tbody tr")
    expect(rows).to_have_count(MAX_KEYS_PER_USER)
    expect(rows.filter(has_text="admin automation")).to_have_count(0)
    page.fill("#f-name", "one too many")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#error-summary")).to_contain_text(
        f"You have {MAX_KEYS_PER_USER} API keys already"
    )
    assert page.input_value("#f-name") == "one too many"
    # Another user's key cannot be revoked from here, even knowing its id.
    csrf = page.get_attribute("meta[name=csrf-token]", "content")
    response = page.request.post(
        f"/dashboard/api-keys/{admin_key['id']}/revoke",
        form={"_csrf": csrf or ""},
        max_redirects=0,
    )
    assert response.status == 303
    page.goto("/dashboard/api-keys")
    expect(page.locator("[data-flash]")).to_contain_text("already revoked")
    assert status_within(site, admin_key["key"], 200) == 200


def test_an_on_demand_task_runs_with_a_payload_typed_on_its_page(site: Site) -> None:
    page = site.new_page()
    site.sign_in(page)
    page.goto("/dashboard/tasks/new")
    page.fill("#f-name", "resize image")
    page.select_option("#f-type", "ON_DEMAND")
    for schedule_input in ("#f-cronExpression", "#f-scheduledAt", "#f-delay"):
        expect(page.locator(schedule_input)).to_be_hidden()
    expect(page.locator(".when-note")).to_be_visible()
    page.fill("#f-payload", '{"width": 100}')
    page.click("form#task-form button[type=submit]")
    page.wait_for_url(TASK_URL)
    task_url = page.url
    expect(page.locator("[data-flash]")).to_contain_text("created")
    assert "On demand" in page.inner_text(".page-head")
    expect(page.locator("#runs-title + p")).to_contain_text("Runs only when asked")
    assert page.locator("button", has_text="Run now").is_enabled()

    page.click("a.button:has-text('Run with payload…')")
    page.wait_for_url("**/runs/new")
    assert json.loads(page.input_value("#f-payload")) == {"width": 100}
    typed = '{"width": 640, "format": '
    page.fill("#f-payload", typed)
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#error-summary")
    expect(page.locator("#e-payload")).to_contain_text("is not valid JSON")
    assert page.input_value("#f-payload") == typed

    # Due in a few seconds, so the execution's page is usually open before it runs and
    # the result arrives live; either way the page must end up showing it.
    wanted: dict[str, Any] = {"width": 640, "format": "webp", "note": "<b>not markup</b>"}
    page.fill("#f-payload", json.dumps(wanted))
    page.fill("#f-delay", "3")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(task_url)
    flash = page.locator("[data-flash]")
    expect(flash).to_contain_text("Queued a run due")
    flash.locator("a[data-flash-link]").click()
    page.wait_for_url("**/dashboard/executions/*")
    page.evaluate("() => { window.__stayed = true; }")
    assert json.loads(page.inner_text("#execution-payload")) == wanted
    result = page.locator("#execution-result")
    result.wait_for(timeout=30_000)
    assert json.loads(result.inner_text()) == wanted
    assert page.locator("#execution-result b").count() == 0
    expect(page.locator("#execution-head [data-status]")).to_have_attribute(
        "data-status", "COMPLETED"
    )
    assert page.evaluate("() => window.__stayed === true")


def test_a_payload_the_handler_refuses_is_shown_on_its_input(site: Site) -> None:
    # An on-demand task may leave its payload to its runs.
    task = site.create_task(site.token(), name="nap", type="ON_DEMAND", handler="sleep")
    page = site.new_page()
    site.sign_in(page)
    page.goto(f"/dashboard/tasks/{task['id']}")
    page.click("button:has-text('Run now')")
    flash = page.locator("[data-flash]")
    expect(flash).to_contain_text("Not queued: payload must be a JSON object")
    expect(page.locator("#executions-table tbody tr")).to_have_count(0)
    page.click("a.button:has-text('Run with payload…')")
    page.wait_for_url("**/runs/new")
    page.fill("#f-payload", '{"seconds": "a while"}')
    page.fill("#f-priority", "11")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#error-summary")
    expect(page.locator("#e-payload")).to_contain_text("Payload (JSON) seconds:")
    expect(page.locator("#e-priority")).to_contain_text("Priority")
    assert page.input_value("#f-payload") == '{"seconds": "a while"}'
    assert page.input_value("#f-priority") == "11"
