"""The audit trail in the browser: a change made in the dashboard shows up with its
before/after and its request, filters narrow the list, an org's OWNER sees its own
org's events only, and a MEMBER has no audit page (no link, 403)."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.dashboard.conftest import Site

pytestmark = pytest.mark.browser

ROWS = "#audit-table tbody tr"


def register(site: Site, first: str) -> str:
    email, password = f"{first.lower()}@example.com", f"{first.lower()}-password-1"
    body = {"email": email, "password": password, "firstName": first, "lastName": "Test"}
    status, created = site.api("POST", "/api/v1/auth/register", body)
    assert status == 201, created
    return site.token(email, password)


def sign_in(site: Site, first: str) -> Any:
    page = site.new_page()
    site.sign_in(page, f"{first.lower()}@example.com", f"{first.lower()}-password-1")
    return page


def test_a_dashboard_change_is_listed_with_filters(site: Site) -> None:
    token = site.token()
    task = site.create_task(token, name="nightly report", cronExpression="0 2 * * *")
    page = site.new_page()
    site.sign_in(page)
    page.goto(f"/dashboard/tasks/{task['id']}")
    page.click("button:has-text('Pause')")
    expect(page.locator("[data-flash]")).to_contain_text("Paused “nightly report”")

    page.click("nav a:has-text('Audit')")
    page.wait_for_url("**/dashboard/audit")
    expect(page.locator(ROWS).first).to_contain_text("task.paused")
    page.fill("#a-targetId", task["id"])
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**targetId=*")
    actions = page.locator(f"{ROWS} td[data-label='Action']").all_inner_texts()
    assert actions == ["task.paused", "task.created"]
    paused = page.locator(ROWS).first
    expect(paused.locator("td[data-label='Changes']")).to_contain_text('"ACTIVE" → "PAUSED"')
    expect(paused.locator("td[data-label='Actor']")).to_contain_text("admin@example.com")
    expect(paused.locator("td[data-label='Request']")).to_contain_text("127.0.0.1")

    page.click(f"{ROWS} >> nth=1 >> td[data-label='Action'] a")
    page.wait_for_url("**action=task.created*")
    assert set(page.locator(f"{ROWS} td[data-label='Action']").all_inner_texts()) == {
        "task.created"
    }

    status, trail = site.api("GET", f"/api/v1/audit?targetId={task['id']}", token=token)
    assert status == 200
    assert trail["items"][0]["userAgent"] and "HeadlessChrome" in trail["items"][0]["userAgent"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(site.url("/metrics"), timeout=10) as response:
        metrics = response.read().decode()
    assert 'taskflow_audit_events_total{action="task.paused"} 1.0' in metrics


def test_an_owner_sees_its_org_and_a_member_sees_no_trail(site: Site) -> None:
    owner = register(site, "Olga")
    register(site, "Mike")
    status, orgs = site.api("GET", "/api/v1/orgs", token=owner)
    org = orgs["items"][0]
    status, _ = site.api(
        "POST",
        f"/api/v1/orgs/{org['id']}/members",
        {"email": "mike@example.com", "role": "MEMBER"},
        token=owner,
    )
    assert status == 201
    site.create_task(owner, name="olga's task", cronExpression="0 3 * * *")
    site.create_task(site.token(), name="the admin's task", cronExpression="0 4 * * *")

    page = sign_in(site, "Olga")
    page.goto("/dashboard/audit")
    targets = " ".join(page.locator(f"{ROWS} td[data-label='Action']").all_inner_texts())
    assert "org.member_added" in targets and "task.created" in targets
    assert page.locator(ROWS).count() == 2  # nothing of the admin's org

    member = sign_in(site, "Mike")
    member.select_option("#org-select", label=org["name"])
    expect(member.locator("[data-flash]")).to_contain_text("Now working in")
    assert member.locator("nav a:has-text('Audit')").count() == 0
    response = member.goto("/dashboard/audit")
    assert response is not None and response.status == 403
