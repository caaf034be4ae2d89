"""Working with tasks in the browser: create through the form (with a rejected cron
expression), watch executions arrive live, retry a dead-lettered job, and ownership."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.dashboard.conftest import Site

pytestmark = pytest.mark.browser


def wait_for_rows(page: Any, selector: str, count: int, timeout_s: float = 60.0) -> None:
    """Reload until `selector` matches `count` elements (for pages without live rows)."""
    deadline = time.monotonic() + timeout_s
    while page.locator(selector).count() != count:
        assert time.monotonic() < deadline, f"{selector} never matched {count} rows"
        page.wait_for_timeout(250)
        page.reload()


def open_advanced(page: Any) -> None:
    if page.get_attribute("details.advanced", "open") is None:
        page.click("details.advanced summary")


def test_sign_in_rejects_a_wrong_password_then_signs_in_and_out(site: Site) -> None:
    page = site.new_page()
    page.goto("/")
    page.wait_for_url("**/dashboard/login**")
    page.fill("#email", "admin@example.com")
    page.fill("#password", "not-the-password")
    page.click("form button[type=submit]")
    assert "Wrong email or password" in page.inner_text("#login-error")
    assert page.input_value("#email") == "admin@example.com"
    site.sign_in(page)
    assert page.locator("h1").inner_text() == "Overview"
    page.click("text=Sign out")
    page.wait_for_url("**/dashboard/login")
    expect(page.locator("[data-flash]")).to_contain_text("signed out")
    page.goto("/dashboard/tasks")
    page.wait_for_url("**/dashboard/login?next=%2Fdashboard%2Ftasks")


def test_create_a_cron_task_through_the_form_and_watch_it_run_live(site: Site) -> None:
    page = site.new_page()
    site.sign_in(page)
    page.click("text=New task")
    page.wait_for_url("**/dashboard/tasks/new")
    page.fill("#f-name", "heartbeat")
    page.select_option("#f-type", "RECURRING")
    page.fill("#f-cronExpression", "61 * * * *")
    # The preview judges the expression while it is typed ...
    preview = page.locator("#cron-preview-status")
    preview.filter(has_text="Not valid yet").wait_for()
    assert page.get_attribute("#f-cronExpression", "aria-invalid") == "true"
    # ... and the server refuses it, showing the error next to the field.
    page.click("form#task-form button[type=submit]")
    page.wait_for_selector("#error-summary")
    assert page.url.endswith("/dashboard/tasks/new")
    error = page.locator("#e-cronExpression")
    assert error.is_visible()
    assert "Cron expression" in error.inner_text()
    assert page.input_value("#f-name") == "heartbeat"  # what was typed is kept

    page.fill("#f-cronExpression", "*/2 * * * * *")
    page.locator("#cron-preview-list li").first.wait_for()
    assert page.locator("#cron-preview-list li").count() == 10
    assert page.locator("#e-cronExpression").is_hidden()
    page.click("form#task-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/tasks/[0-9a-f-]{36}$"))
    expect(page.locator("[data-flash]")).to_contain_text("created")
    assert page.locator(".run-list li").count() == 10

    # Executions appear without a reload: the marker survives only if the page stays.
    page.evaluate("() => { window.__stayed = true; }")
    page.locator("#executions-table tbody tr [data-status='COMPLETED']").first.wait_for(
        timeout=30_000
    )
    assert page.evaluate("() => window.__stayed === true")
    assert page.get_attribute("#live-status", "data-state") == "live"


def test_retry_a_dead_lettered_job_from_the_page(site: Site) -> None:
    page = site.new_page()
    site.sign_in(page)
    page.goto("/dashboard/tasks/new")
    page.fill("#f-name", "always fails")
    page.select_option("#f-type", "ONE_TIME")
    page.select_option("#f-handler", "fail")
    page.fill("#f-payload", '{"message": "the <b>disk</b> is full"}')
    open_advanced(page)
    page.fill("#f-maxRetries", "0")
    page.click("form#task-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/tasks/[0-9a-f-]{36}$"))

    page.click("nav >> text=Dead letter")
    page.wait_for_url("**/dashboard/dead-letter")
    row = page.locator("#dl-table tbody tr")
    wait_for_rows(page, "#dl-table tbody tr", 1)
    # Job output is shown as text, never as markup.
    assert "the <b>disk</b> is full" in row.first.inner_text()
    assert page.locator("#dl-table b").count() == 0
    row.first.locator("button", has_text="Retry").click()
    # The form posts back to the same URL, so wait for the new message, not the URL.
    expect(page.locator("[data-flash]")).to_contain_text("Queued for retry: 1 job.")

    # The retried attempt fails again and returns to the queue, attempt number going on.
    wait_for_rows(page, "#dl-table tbody tr", 1)
    assert page.locator("#dl-table tbody tr td[data-label='Attempts']").inner_text() == "2"

    # Bulk: select all, delete, confirm in the dialog.
    page.check("#select-all")
    assert page.inner_text("#selected-count") == "1 selected"
    page.click("button:has-text('Delete selected')")
    page.click("#confirm-ok")
    expect(page.locator("[data-flash]")).to_contain_text("Deleted: 1 job.")
    assert page.locator("#dl-table").count() == 0


def test_a_user_sees_only_their_own_tasks(site: Site) -> None:
    admin_token = site.token()
    secret = site.create_task(
        admin_token, name="admin payroll", cronExpression="0 3 * * *", handler="echo"
    )
    admin = site.new_page()
    site.sign_in(admin)
    admin.goto("/dashboard/users")
    admin.fill("#u-email", "user@example.com")
    admin.fill("#u-firstName", "Uma")
    admin.fill("#u-lastName", "User")
    admin.fill("#u-password", "user-password-123")
    admin.click("button:has-text('Create user')")
    expect(admin.locator("[data-flash]")).to_contain_text("Created user@example.com")

    user = site.new_page()
    site.sign_in(user, "user@example.com", "user-password-123")
    assert user.locator("nav >> text=Users").count() == 0
    user.goto("/dashboard/tasks/new")
    user.fill("#f-name", "my own task")
    user.fill("#f-cronExpression", "0 4 * * *")
    user.click("form#task-form button[type=submit]")
    user.wait_for_url(re.compile(r".*/dashboard/tasks/[0-9a-f-]{36}$"))
    user.goto("/dashboard/tasks")
    names = user.locator("#tasks-table tbody tr td[data-label='Name'] a").all_inner_texts()
    assert names == ["my own task"]
    response = user.goto(f"/dashboard/tasks/{secret['id']}")
    assert response is not None and response.status == 404
    assert "Not found" in user.locator("h1").inner_text()
    response = user.goto("/dashboard/users")
    assert response is not None and response.status == 403

    admin.goto("/dashboard/tasks")
    admin_names = admin.locator("#tasks-table tbody tr td[data-label='Name'] a").all_inner_texts()
    assert set(admin_names) == {"admin payroll", "my own task"}


def test_pause_resume_edit_and_delete_a_task(site: Site) -> None:
    token = site.token()
    task = site.create_task(token, name="nightly report", cronExpression="0 2 * * *")
    page = site.new_page()
    site.sign_in(page)
    page.goto(f"/dashboard/tasks/{task['id']}")
    page.click("button:has-text('Pause')")
    expect(page.locator("[data-flash]")).to_contain_text("Paused “nightly report”")
    assert page.locator(".page-head [data-status='PAUSED']").count() == 1
    page.click("button:has-text('Resume')")
    expect(page.locator("[data-flash]")).to_contain_text("Resumed")
    page.click("text=Edit")
    page.fill("#f-name", "nightly report v2")
    page.fill("#f-timezone", "Europe/Berlin")
    page.click("form#task-form button[type=submit]")
    expect(page.locator("[data-flash]")).to_contain_text("Saved “nightly report v2”")
    assert "Europe/Berlin" in page.inner_text(".props")
    page.click("button:has-text('Delete')")
    page.click("#confirm-ok")
    page.wait_for_url("**/dashboard/tasks")
    expect(page.locator("[data-flash]")).to_contain_text("Deleted “nightly report v2”")


def test_change_the_password_and_stay_signed_in(site: Site) -> None:
    old_token = site.token()
    page = site.new_page()
    site.sign_in(page)
    page.click(".user-link")
    page.wait_for_url("**/dashboard/profile")
    page.fill("#p-currentPassword", "not-my-password")
    page.fill("#p-newPassword", "brand-new-password-1")
    page.fill("#p-confirmPassword", "brand-new-password-1")
    page.click("button:has-text('Change password')")
    assert "is not your current password" in page.inner_text("#pe-currentPassword")
    page.fill("#p-currentPassword", "admin-password-123")
    page.fill("#p-newPassword", "brand-new-password-1")
    page.fill("#p-confirmPassword", "brand-new-password-2")
    page.click("button:has-text('Change password')")
    assert "does not match" in page.inner_text("#pe-confirmPassword")
    page.fill("#p-currentPassword", "admin-password-123")
    page.fill("#p-newPassword", "brand-new-password-1")
    page.fill("#p-confirmPassword", "brand-new-password-1")
    page.click("button:has-text('Change password')")
    expect(page.locator("[data-flash]")).to_contain_text("Password changed")
    page.goto("/dashboard/tasks")  # this session goes on ...
    assert page.locator("h1").inner_text() == "Tasks"
    status, _ = site.api("GET", "/api/v1/auth/me", token=old_token)
    assert status == 401  # ... while tokens issued before are over
    site.token(password="brand-new-password-1")


def test_a_deactivated_user_is_signed_out_at_once(site: Site) -> None:
    status, user = site.api(
        "POST",
        "/api/v1/auth/register",
        {
            "email": "leaver@example.com",
            "password": "leaver-password-1",
            "firstName": "Lee",
            "lastName": "Ver",
        },
    )
    assert status == 201
    leaver = site.new_page()
    site.sign_in(leaver, "leaver@example.com", "leaver-password-1")
    leaver.wait_for_function(
        "() => document.querySelector('#live-status').dataset.state === 'live'"
    )
    admin = site.new_page()
    site.sign_in(admin)
    admin.goto("/dashboard/users")
    row = admin.locator(f"tr[data-user-id='{user['id']}']")
    row.locator("button", has_text="Deactivate").click()
    admin.click("#confirm-ok")
    expect(admin.locator("[data-flash]")).to_contain_text(
        "leaver@example.com is now USER, deactivated"
    )
    # The open page of the deactivated user notices on its event stream and leaves.
    leaver.wait_for_url("**/dashboard/login**", timeout=30_000)
    leaver.fill("#email", "leaver@example.com")
    leaver.fill("#password", "leaver-password-1")
    leaver.click("form button[type=submit]")
    assert "Wrong email or password" in leaver.inner_text("#login-error")
    admin.reload()
    row.locator("button", has_text="Activate").click()
    expect(admin.locator("[data-flash]")).to_contain_text("is now USER, active")
