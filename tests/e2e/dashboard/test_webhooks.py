"""Webhooks in the browser: an org owner adds an endpoint through the page, copies the
secret shown once, sends a test event and sees its delivery to a real receiver in the
log; both pages read well on a desktop and a phone, in both themes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DaemonProcess, Daemons
from tests.e2e.dashboard.conftest import (
    DESKTOP,
    PHONE,
    Site,
    contrast_problems,
    has_horizontal_scroll,
    screenshot,
)
from tests.e2e.dashboard.receiver import DELIVERING_ENV, Answers, threaded_receiver
from tests.integration.webhooks.receiver import verified_by

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "hana@example.com", "hana-password-1"
ROWS = "#deliveries-table tbody tr"


@pytest.fixture
def dashboard_daemon(daemons: Daemons) -> DaemonProcess:
    return daemons.start(env=DELIVERING_ENV)


@pytest.fixture
def receiver() -> Iterator[tuple[Answers, str]]:
    answers = Answers()
    with threaded_receiver(answers) as url:
        yield answers, url


def reload_until(page: Any, selector: str, what: str, timeout_s: float = 30.0) -> None:
    """Reload until `selector` is on the page (the log is not live); fail after the
    deadline."""
    deadline = time.monotonic() + timeout_s
    while page.locator(selector).count() == 0:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(200)
        page.reload()


def look(site: Site, path: str, name: str) -> list[str]:
    """Screenshots of `path` on a desktop and a phone in both themes; what reads badly."""
    problems = []
    for theme in ("light", "dark"):
        for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
            page = site.new_page(viewport, color_scheme=theme)
            site.sign_in(page, EMAIL, PASSWORD)
            page.goto(path)
            if has_horizontal_scroll(page):
                problems.append(f"{name}-{theme}{suffix}: horizontal scroll")
            problems.extend(f"{name}-{theme}{suffix}: {p}" for p in contrast_problems(page))
            screenshot(page, f"{name}-{theme}{suffix}")
    return problems


def test_an_owner_adds_an_endpoint_and_sees_its_test_delivery(
    site: Site, receiver: tuple[Answers, str]
) -> None:
    answers, url = receiver
    body = {"email": EMAIL, "password": PASSWORD, "firstName": "Hana", "lastName": "Test"}
    assert site.api("POST", "/api/v1/auth/register", body)[0] == 201
    token = site.token(EMAIL, PASSWORD)
    status, other = site.api(
        "POST",
        "/api/v1/webhooks",
        {"url": "https://chat.example.com/hooks/ops", "events": ["execution.failed"]},
        token=token,
    )
    assert status == 201
    status, _ = site.api("PATCH", f"/api/v1/webhooks/{other['id']}", {"enabled": False}, token)
    assert status == 200

    page = site.new_page()
    site.sign_in(page, EMAIL, PASSWORD)
    page.click("nav a:has-text('Webhooks')")
    page.wait_for_url("**/dashboard/webhooks")
    page.fill("#f-url", url)
    page.check("input[name=events][value='execution.completed']")
    page.check("input[name=events][value='workflow_run.finished']")
    page.fill("#f-description", "deploy bot")
    page.click("#webhook-form button[type=submit]")
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("whsec_")
    expect(page.locator("#secret-once")).to_contain_text("you will not see it again")
    screenshot(page, "webhook-created")

    page.click("#secret-done")
    expect(page.locator("h1")).to_contain_text(url)
    assert secret not in page.content()
    page.click("#test-webhook")
    expect(page.locator("[data-flash]")).to_contain_text("Sent a ping event")
    reload_until(page, f"{ROWS}[data-status='SUCCEEDED']", "the ping to be delivered")
    row = page.locator(ROWS).first
    expect(row.locator("td[data-label='Event']")).to_contain_text("ping")
    expect(row.locator("[data-cell='code']")).to_have_text("200")
    expect(row.locator("[data-cell='attempts']")).to_have_text("1")
    row.locator("summary").click()
    expect(row.locator("[data-cell='body']")).to_have_text("ok")
    (got,) = answers.received()
    assert got.message["type"] == "ping" and verified_by(secret, got)
    endpoint_path = page.url.removeprefix(site.url(""))
    endpoint_path = "/" + endpoint_path.lstrip("/")

    page.click("nav a:has-text('Webhooks')")
    created = page.locator("#webhooks-table tbody tr", has_text="deploy bot")
    expect(created.locator("[data-cell='last']")).to_contain_text("Succeeded")
    disabled = page.locator("#webhooks-table tbody tr", has_text="chat.example.com")
    expect(disabled.locator("[data-cell='status']")).to_contain_text("disabled by a user")

    problems = look(site, "/dashboard/webhooks", "webhooks")
    problems += look(site, endpoint_path, "webhook-detail")
    assert not problems, "\n".join(problems)
