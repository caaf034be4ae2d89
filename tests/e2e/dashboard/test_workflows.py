"""Workflows in the browser: the list, the graph drawn left to right with each step
coloured live by the selected run, the run history, and the run, cancel and retry
buttons (which a VIEWER neither sees nor may post)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DaemonProcess
from tests.e2e.dashboard.conftest import PHONE, Site, has_horizontal_scroll, screenshot

pytestmark = pytest.mark.browser

DIAMOND = [
    {"key": "extract", "handler": "echo", "payload": {"table": "orders"}},
    {"key": "report_a", "handler": "echo", "dependsOn": ["extract"]},
    {"key": "report_b", "handler": "echo", "dependsOn": ["extract"]},
    {"key": "mail", "handler": "echo", "dependsOn": ["report_a", "report_b"]},
    {"key": "page_someone", "handler": "echo", "dependsOn": ["mail"], "trigger": "ONE_FAILED"},
]


@pytest.fixture
def dashboard_daemon(shared_daemon: DaemonProcess) -> DaemonProcess:
    return shared_daemon


def create_workflow(site: Site, token: str, name: str, steps: list[dict[str, Any]]) -> Any:
    status, body = site.api("POST", "/api/v1/workflows", {"name": name, "steps": steps}, token)
    assert status == 201, body
    return body


def node_status(page: Any, key: str) -> str:
    return str(
        page.locator(f"#workflow-graph .wf-node[data-step='{key}']").get_attribute("data-status")
    )


def wait_for_node(page: Any, key: str, status: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        """([key, status]) => {
          const n = document.querySelector(`#workflow-graph .wf-node[data-step="${key}"]`);
          return n && n.dataset.status === status;
        }""",
        arg=[key, status],
        timeout=timeout_ms,
    )


def test_the_graph_is_drawn_left_to_right_and_coloured_live(site: Site) -> None:
    token = site.token()
    workflow = create_workflow(site, token, "nightly reports", DIAMOND)
    status, scheduled = site.api(
        "POST",
        "/api/v1/workflows",
        {
            "name": "berlin mornings",
            "steps": [{"key": "only"}],
            "cronExpression": "0 3 * * *",
            "timezone": "Europe/Berlin",
        },
        token,
    )
    assert status == 201, scheduled
    page = site.new_page()
    site.sign_in(page)
    page.click("nav >> text=Workflows")
    cron = page.locator(f"#workflows-table tr[data-workflow-id='{scheduled['id']}']")
    expect(cron.locator("td[data-label='Schedule']")).to_contain_text("0 3 * * *")
    expect(cron.locator("td[data-label='Schedule']")).to_contain_text("Europe/Berlin")
    expect(cron.locator("td[data-label='Next run'] time")).to_have_count(1)
    screenshot(page, "workflows-list")
    row = page.locator(f"#workflows-table tr[data-workflow-id='{workflow['id']}']")
    expect(row.locator("td[data-label='Steps']")).to_have_text("5")
    row.locator("a").click()
    expect(page.locator("h1")).to_have_text("nightly reports")

    # Layered by longest path: each column lies to the right of its upstream's.
    boxes = {
        key: page.locator(f".wf-node[data-step='{key}'] rect").first.bounding_box()
        for key in ("extract", "report_a", "report_b", "mail", "page_someone")
    }
    assert boxes["extract"]["x"] < boxes["report_a"]["x"] == boxes["report_b"]["x"]
    assert boxes["report_a"]["x"] < boxes["mail"]["x"] < boxes["page_someone"]["x"]
    assert boxes["report_a"]["y"] != boxes["report_b"]["y"]
    assert page.locator(".wf-edge").count() == 5
    assert page.locator(".wf-edge[marker-end]").count() == 5
    expect(page.locator(".wf-node[data-step='mail'] .wf-handler")).to_contain_text("echo")
    screenshot(page, "workflow-no-runs")

    # Started from the page while the workflow is paused, its steps wait; resumed, the
    # page follows the run to its end without being reloaded.
    status, _ = site.api("POST", f"/api/v1/workflows/{workflow['id']}/pause", None, token)
    assert status == 200
    page.click("#run-workflow")
    expect(page.locator("[data-flash]")).to_contain_text("Started run")
    page.wait_for_function("() => document.querySelector('#live-status').dataset.state === 'live'")
    page.evaluate("() => { window.notReloaded = true; }")
    assert node_status(page, "extract") == "PENDING"
    assert node_status(page, "mail") == "PENDING"
    expect(page.locator("#run-head .badge")).to_have_text("Running")
    screenshot(page, "workflow-running")
    status, _ = site.api("POST", f"/api/v1/workflows/{workflow['id']}/resume", None, token)
    assert status == 200
    wait_for_node(page, "mail", "COMPLETED")
    wait_for_node(page, "page_someone", "SKIPPED")
    expect(page.locator("#run-head .badge")).to_have_text("Succeeded")
    assert page.evaluate("() => window.notReloaded") is True
    edge = page.locator(".wf-edge[data-from='extract'][data-to='report_a']")
    assert edge.get_attribute("data-status") == "COMPLETED"
    steps = page.locator("#steps-table tbody tr")
    expect(steps).to_have_count(5)
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    assert page.locator("#cancel-run").count() == 0
    screenshot(page, "workflow-succeeded")

    dark = site.new_page(color_scheme="dark")
    site.sign_in(dark)
    dark.goto(f"/dashboard/workflows/{workflow['id']}")
    screenshot(dark, "workflow-succeeded-dark")
    phone = site.new_page(viewport=PHONE)
    site.sign_in(phone)
    phone.goto(f"/dashboard/workflows/{workflow['id']}")
    assert not has_horizontal_scroll(phone)
    screenshot(phone, "workflow-phone")


def test_cancel_and_retry_buttons(site: Site) -> None:
    token = site.token()
    slow = create_workflow(
        site,
        token,
        "slow",
        [
            {"key": "wait", "handler": "echo"},
            {"key": "after", "handler": "echo", "dependsOn": ["wait"]},
        ],
    )
    status, _ = site.api("POST", f"/api/v1/workflows/{slow['id']}/pause", None, token)
    assert status == 200
    page = site.new_page()
    site.sign_in(page)
    page.goto(f"/dashboard/workflows/{slow['id']}")
    page.click("#run-workflow")
    wait_for_node(page, "wait", "PENDING")
    page.click("#cancel-run")
    page.click("#confirm-ok")
    expect(page.locator("[data-flash]")).to_contain_text("Run cancelled")
    expect(page.locator("#run-head .badge")).to_have_text("Cancelled", timeout=30_000)
    wait_for_node(page, "wait", "CANCELLED")

    flaky = create_workflow(
        site,
        token,
        "flaky",
        [
            {"key": "fetch", "handler": "fail", "maxRetries": 0},
            {"key": "store", "handler": "echo", "dependsOn": ["fetch"]},
        ],
    )
    page.goto(f"/dashboard/workflows/{flaky['id']}")
    page.click("#run-workflow")
    wait_for_node(page, "fetch", "FAILED")
    wait_for_node(page, "store", "SKIPPED")
    expect(page.locator("#run-head .badge")).to_have_text("Failed")
    screenshot(page, "workflow-failed")
    page.click("#retry-run")
    expect(page.locator("[data-flash]")).to_contain_text("Retrying")
    # The step fails again (its handler always does), on its second attempt.
    expect(
        page.locator("#steps-table tr[data-step='fetch'] td[data-label='Attempts']")
    ).to_have_text("2")
    # The history lists both runs, newest first; choosing the older one shows its steps.
    page.goto(f"/dashboard/workflows/{slow['id']}")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    page.click("#run-workflow")
    expect(page.locator("#runs-table tbody tr")).to_have_count(2)
    page.locator("#runs-table tbody tr").nth(1).locator("a").click()
    expect(page.locator("#run-head .badge")).to_have_text("Cancelled")
    expect(page.locator("#runs-table tr.selected")).to_have_count(1)
    page.locator("#runs-table tbody tr").nth(0).locator("a").click()
    page.click("#cancel-run")
    page.click("#confirm-ok")
    expect(page.locator("#run-head .badge")).to_have_text("Cancelled", timeout=30_000)


def test_a_viewer_sees_no_buttons_and_is_refused_with_403(site: Site) -> None:
    owner_email, viewer_email = "wanda@example.com", "walt@example.com"
    tokens = {}
    for first, email in (("Wanda", owner_email), ("Walt", viewer_email)):
        status, body = site.api(
            "POST",
            "/api/v1/auth/register",
            {"email": email, "password": "password-12345", "firstName": first, "lastName": "T"},
        )
        assert status == 201, body
        tokens[email] = site.token(email, "password-12345")
    status, orgs = site.api("GET", "/api/v1/orgs", token=tokens[owner_email])
    org_id = orgs["items"][0]["id"]
    status, body = site.api(
        "POST",
        f"/api/v1/orgs/{org_id}/members",
        {"email": viewer_email, "role": "VIEWER"},
        token=tokens[owner_email],
    )
    assert status == 201, body
    workflow = create_workflow(
        site,
        tokens[owner_email],
        "owned",
        [{"key": "wait", "handler": "echo"}],
    )
    status, _ = site.api(
        "POST", f"/api/v1/workflows/{workflow['id']}/pause", None, tokens[owner_email]
    )
    assert status == 200
    status, run = site.api(
        "POST", f"/api/v1/workflows/{workflow['id']}/run", None, tokens[owner_email]
    )
    assert status in (201, 202), run

    page = site.new_page()
    site.sign_in(page, viewer_email, "password-12345")
    page.select_option("#org-select", label="Wanda's Team")
    expect(page.locator("[data-flash]")).to_contain_text("Now working in")
    page.goto(f"/dashboard/workflows/{workflow['id']}")
    expect(page.locator("#run-head .badge")).to_have_text("Running")
    for button in ("#run-workflow", "#cancel-run", "#retry-run"):
        assert page.locator(button).count() == 0, button
    for action in (f"workflows/{workflow['id']}/run", f"workflow-runs/{run['id']}/cancel"):
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
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
                f"/dashboard/{action}",
            )
        assert answer.value.status == 403, action
        expect(page.locator("h1")).to_have_text("Not allowed")
        page.goto(f"/dashboard/workflows/{workflow['id']}")
    status, still = site.api("GET", f"/api/v1/workflow-runs/{run['id']}", None, tokens[owner_email])
    assert status == 200 and still["status"] == "RUNNING"
    status, _ = site.api(
        "POST", f"/api/v1/workflow-runs/{run['id']}/cancel", None, tokens[owner_email]
    )
    assert status in (200, 202)
