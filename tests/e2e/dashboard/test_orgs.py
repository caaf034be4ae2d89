"""Organizations in the browser: the header's switcher scopes every page to the current
org, the org page shows quotas and usage, the members page invites, changes roles and
removes, and a VIEWER sees no button that changes anything (and is refused if it posts)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.dashboard.conftest import Site, screenshot

pytestmark = pytest.mark.browser

TASK_NAMES = "#tasks-table tbody tr td[data-label='Name'] a"


def register(site: Site, first: str) -> str:
    """A new user (with its personal org); its access token."""
    email, password = f"{first.lower()}@example.com", f"{first.lower()}-password-1"
    status, body = site.api(
        "POST",
        "/api/v1/auth/register",
        {"email": email, "password": password, "firstName": first, "lastName": "Test"},
    )
    assert status == 201, body
    return site.token(email, password)


def sign_in(site: Site, first: str) -> Any:
    page = site.new_page()
    site.sign_in(page, f"{first.lower()}@example.com", f"{first.lower()}-password-1")
    return page


def task_names(page: Any) -> list[str]:
    page.goto("/dashboard/tasks")
    return sorted(page.locator(TASK_NAMES).all_inner_texts())


def switch_to(page: Any, org_name: str) -> None:
    page.select_option("#org-select", label=org_name)
    expect(page.locator("[data-flash]")).to_contain_text(f"Now working in “{org_name}”")


def test_the_switcher_shows_only_the_current_orgs_tasks(site: Site) -> None:
    token = register(site, "Olga")
    status, second = site.api("POST", "/api/v1/orgs", {"name": "Second Team"}, token=token)
    assert status == 201, second
    site.create_task(token, name="alpha", cronExpression="0 3 * * *")
    status, beta = site.api(
        "POST",
        "/api/v1/tasks",
        {"name": "beta", "cronExpression": "0 4 * * *"},
        token=token,
        org=second["id"],
    )
    assert status == 201, beta

    page = sign_in(site, "Olga")
    assert task_names(page) == ["alpha"]
    options = page.locator("#org-select option").all_inner_texts()
    assert sorted(options) == ["Olga's Team", "Second Team"]
    switch_to(page, "Second Team")
    assert task_names(page) == ["beta"]
    page.goto("/dashboard/executions")
    assert page.locator("text=alpha").count() == 0

    page.goto("/dashboard/org")
    assert page.locator("h1").inner_text() == "Second Team"
    assert page.locator("#org-slug").inner_text() == second["slug"]
    expect(page.locator("#org-role")).to_contain_text("Owner")
    usage = page.locator("#quotas-table tr[data-quota='max_tasks'] [data-cell='usage']")
    assert usage.inner_text() == "1"
    assert page.locator("#quota-form").count() == 0  # quotas are the site admin's
    screenshot(page, "org-page")

    # A stale or foreign org id in the cookie means the default org again.
    for stale in ("no-such-org", "00000000-0000-4000-8000-000000000001"):
        page.context.add_cookies([{"name": "taskflowd_org", "value": stale, "url": site.url("/")}])
        assert task_names(page) == ["alpha"]
    response = page.goto(f"/dashboard/tasks/{beta['id']}")
    assert response is not None and response.status == 404


def test_members_page_invites_changes_roles_and_removes(site: Site) -> None:
    token = register(site, "Olga")
    register(site, "Mia")
    register(site, "Ned")
    site.create_task(token, name="team report", cronExpression="0 5 * * *")

    owner = sign_in(site, "Olga")
    owner.goto("/dashboard/org/members")
    for email, role in (("mia@example.com", "MEMBER"), ("ned@example.com", "VIEWER")):
        owner.fill("#invite-email", email)
        owner.select_option("#invite-role", role)
        owner.click("#invite-form button[type=submit]")
        expect(owner.locator("[data-flash]")).to_contain_text(f"{email} is now a {role}")
    rows = owner.locator("#members-table tbody tr")
    expect(rows).to_have_count(3)
    screenshot(owner, "members-page")
    owner.fill("#invite-email", "nobody@example.com")
    owner.click("#invite-form button[type=submit]")
    expect(owner.locator("[data-flash]")).to_contain_text(
        "Not invited: no user has this email address"
    )

    member = sign_in(site, "Mia")
    assert task_names(member) == []  # her own org first
    switch_to(member, "Olga's Team")
    assert task_names(member) == ["team report"]

    ned = owner.locator("tr[data-email='ned@example.com']")
    ned.locator("select").select_option("MEMBER")
    ned.locator("button:has-text('Set role')").click()
    expect(owner.locator("[data-flash]")).to_contain_text("ned@example.com is now a MEMBER")
    mia = owner.locator("tr[data-email='mia@example.com']")
    mia.locator("button:has-text('Remove')").click()
    owner.click("#confirm-ok")
    expect(owner.locator("[data-flash]")).to_contain_text("Removed the member")
    expect(rows).to_have_count(2)
    member.goto("/dashboard/tasks")
    assert task_names(member) == []  # back in her own org: the cookie's org is gone


def test_a_viewer_sees_no_mutation_buttons_and_a_forged_post_is_refused(site: Site) -> None:
    token = register(site, "Olga")
    viewer_token = register(site, "Vic")
    task = site.create_task(token, name="payroll", cronExpression="0 6 * * *")
    status, orgs = site.api("GET", "/api/v1/orgs", token=token)
    assert status == 200
    org_id = orgs["items"][0]["id"]
    status, body = site.api(
        "POST",
        f"/api/v1/orgs/{org_id}/members",
        {"email": "vic@example.com", "role": "VIEWER"},
        token=token,
    )
    assert status == 201, body

    page = sign_in(site, "Vic")
    switch_to(page, "Olga's Team")
    assert task_names(page) == ["payroll"]
    assert page.locator("a:has-text('New task')").count() == 0
    page.goto(f"/dashboard/tasks/{task['id']}")
    assert page.locator("[aria-label='Task actions']").count() == 0
    for text in ("Run now", "Pause", "Edit", "Delete", "Run with payload"):
        assert page.locator(f"main >> text={text}").count() == 0, text
    page.goto("/dashboard/")
    assert page.locator("a:has-text('New task')").count() == 0
    page.goto("/dashboard/org/members")
    assert page.locator("#invite-form").count() == 0
    assert page.locator("#members-table form").count() == 0

    # A form posted anyway, with a valid CSRF token, is refused with a message.
    page.goto(f"/dashboard/tasks/{task['id']}")
    page.evaluate(
        """(action) => {
          const form = document.createElement("form");
          form.method = "post";
          form.action = action;
          const token = document.createElement("input");
          token.name = "_csrf";
          token.value = document.querySelector("meta[name=csrf-token]").content;
          form.appendChild(token);
          document.body.appendChild(form);
          form.submit();
        }""",
        f"/dashboard/tasks/{task['id']}/delete",
    )
    expect(page.locator("[data-flash]")).to_contain_text("only reads")
    response = page.goto("/dashboard/tasks/new")
    expect(page.locator("[data-flash]")).to_contain_text("only reads")
    assert response is not None and page.url.endswith("/dashboard/tasks")
    status, _ = site.api("GET", f"/api/v1/tasks/{task['id']}", token=token)
    assert status == 200
    status, _ = site.api("GET", f"/api/v1/tasks/{task['id']}", token=viewer_token, org=org_id)
    assert status == 200


def test_a_site_admin_sets_an_orgs_quota_and_members_hit_it(site: Site) -> None:
    token = register(site, "Olga")
    site.create_task(token, name="first", cronExpression="0 7 * * *")
    admin = site.new_page()
    site.sign_in(admin)
    assert admin.locator("#org-select option:checked").inner_text() == "All organizations"
    switch_to(admin, "Olga's Team")
    admin.goto("/dashboard/org")
    expect(admin.locator("#org-role")).to_contain_text("Site administrator")
    admin.fill("#f-max_tasks", "1")
    admin.click("#quota-form button[type=submit]")
    expect(admin.locator("[data-flash]")).to_contain_text("Quotas saved")
    limit = admin.locator("#quotas-table tr[data-quota='max_tasks'] [data-cell='limit']")
    assert limit.inner_text() == "1"
    admin.fill("#f-max_tasks", "lots")
    admin.click("#quota-form button[type=submit]")
    expect(admin.locator("#error-summary")).to_contain_text("Tasks must be a whole number")

    owner = sign_in(site, "Olga")
    owner.goto("/dashboard/tasks/new")
    owner.fill("#f-name", "second")
    owner.fill("#f-cronExpression", "0 8 * * *")
    # The node's quota book forgot the org when the admin saved its override.
    owner.click("form#task-form button[type=submit]")
    expect(owner.locator("#error-summary")).to_contain_text("max_tasks")
