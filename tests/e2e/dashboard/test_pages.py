"""Every page, in both themes and on a phone: screenshots, no horizontal scroll, WCAG AA
text contrast, no console errors, and a theme choice that survives a reload."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.dashboard.conftest import (
    DESKTOP,
    PHONE,
    Site,
    contrast_problems,
    has_horizontal_scroll,
    screenshot,
)

pytestmark = pytest.mark.browser


def seed(site: Site) -> dict[str, str]:
    """Tasks, executions (one with a retry history), a dead-letter entry and a second
    user, so that every page has something to show. Returns ids by name."""
    token = site.token()
    status, _ = site.api(
        "POST",
        "/api/v1/auth/register",
        {
            "email": "uma@example.com",
            "password": "user-password-123",
            "firstName": "Uma",
            "lastName": "User",
        },
    )
    assert status == 201
    ticking = site.create_task(
        token,
        name="sync inventory",
        description="Pulls stock levels from the warehouse every two seconds",
        cronExpression="*/2 * * * * *",
        handler="echo",
        payload={"warehouse": "north", "full": False},
    )
    flaky = site.create_task(
        token,
        name="charge cards <script>alert(1)</script>",
        handler="fail",
        payload={"message": "card processor said <b>no</b>"},
        maxRetries=2,
        backoffMs=50,
    )
    site.create_task(
        token, name="monthly invoices", cronExpression="0 6 1 * *", timezone="Europe/Berlin"
    )
    site.create_task(token, name="send welcome email", delayMs=3_600_000, handler="echo")
    on_demand = site.create_task(
        token, name="resize image", type="ON_DEMAND", payload={"width": 100, "format": "png"}
    )
    status, run = site.api(
        "POST",
        f"/api/v1/tasks/{on_demand['id']}/run",
        {"payload": {"width": 640, "format": "webp"}, "priority": 5},
        token=token,
    )
    assert status == 202, run
    for name, expires in (("nightly export", None), ("ci deploys", "2999-01-01T00:00:00Z")):
        status, _ = site.api(
            "POST", "/api/v1/api-keys", {"name": name, "expiresAt": expires}, token=token
        )
        assert status == 201
    deadline = time.monotonic() + 30
    dead: list[Any] = []
    while time.monotonic() < deadline and not dead:
        _, body = site.api("GET", "/api/v1/dead-letter", token=token)
        dead = body["items"]
        time.sleep(0.2)
    assert dead, "the failing task never reached the dead-letter queue"
    _, executions = site.api("GET", f"/api/v1/tasks/{ticking['id']}/executions", token=token)
    while time.monotonic() < deadline and not executions["items"]:
        time.sleep(0.2)
        _, executions = site.api("GET", f"/api/v1/tasks/{ticking['id']}/executions", token=token)
    return {
        "on_demand": on_demand["id"],
        "run_execution": run["id"],
        "ticking": ticking["id"],
        "flaky": flaky["id"],
        "flaky_execution": dead[0]["executionId"],
        "ok_execution": executions["items"][0]["id"],
    }


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    flaky_execution = ids["flaky_execution"]
    listed = [
        ("overview", "/dashboard/"),
        ("tasks", "/dashboard/tasks"),
        ("tasks-filtered", "/dashboard/tasks?status=ACTIVE&type=RECURRING&q=sync"),
        ("task-detail", f"/dashboard/tasks/{ids['ticking']}"),
        ("task-detail-failed", f"/dashboard/tasks/{ids['flaky']}"),
        ("task-new", "/dashboard/tasks/new"),
        ("task-edit", f"/dashboard/tasks/{ids['ticking']}/edit"),
        ("executions", "/dashboard/executions"),
        ("execution-completed", f"/dashboard/executions/{ids['ok_execution']}"),
        ("dead-letter", "/dashboard/dead-letter"),
        ("users", "/dashboard/users"),
        ("profile", "/dashboard/profile"),
        ("api-keys", "/dashboard/api-keys"),
        ("audit", "/dashboard/audit"),
        ("audit-filtered", "/dashboard/audit?action=task.created&since=2020-01-01"),
        ("task-detail-on-demand", f"/dashboard/tasks/{ids['on_demand']}"),
        ("task-run", f"/dashboard/tasks/{ids['on_demand']}/runs/new"),
        ("execution-own-payload", f"/dashboard/executions/{ids['run_execution']}"),
        ("not-found", "/dashboard/tasks/00000000-0000-0000-0000-000000000000"),
    ]
    listed.append(("execution-failed", f"/dashboard/executions/{flaky_execution}"))
    return listed


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_in_both_themes_and_on_a_phone(site: Site, theme: str) -> None:
    ids = seed(site)
    desktop = site.new_page(DESKTOP, color_scheme=theme)
    phone = site.new_page(PHONE, color_scheme=theme)
    login_page = site.new_page(DESKTOP, color_scheme=theme)
    login_page.goto("/dashboard/login")
    screenshot(login_page, f"login-{theme}")
    assert contrast_problems(login_page) == []
    phone_login = site.new_page(PHONE, color_scheme=theme)
    phone_login.goto("/dashboard/login")
    assert not has_horizontal_scroll(phone_login)
    screenshot(phone_login, f"login-{theme}-phone")
    site.sign_in(desktop)
    site.sign_in(phone)
    problems = []
    for name, path in pages(ids):
        for page, suffix in ((desktop, ""), (phone, "-phone")):
            page.goto(path)
            page.wait_for_load_state("load")
            if name == "overview":
                page.locator("#throughput-chart svg").wait_for()
            if name in ("task-new", "task-edit"):
                page.locator("#cron-preview-list li").first.wait_for()
            page.wait_for_timeout(150)
            assert page.evaluate("() => document.documentElement.dataset.theme || ''") == ""
            if has_horizontal_scroll(page):
                problems.append(f"{name}{suffix}: horizontal scroll")
            problems.extend(f"{name}{suffix}: contrast {p}" for p in contrast_problems(page))
            screenshot(page, f"{name}-{theme}{suffix}")
    # The form sent back with errors, too.
    desktop.goto("/dashboard/tasks/new")
    desktop.fill("#f-name", " ")
    desktop.fill("#f-cronExpression", "every day")
    desktop.fill("#f-payload", "{not json")
    desktop.click("form#task-form button[type=submit]")
    desktop.wait_for_selector("#error-summary")
    screenshot(desktop, f"task-form-errors-{theme}")
    problems.extend(f"form errors: contrast {p}" for p in contrast_problems(desktop))
    desktop.goto(f"/dashboard/tasks/{ids['on_demand']}/runs/new")
    desktop.fill("#f-payload", '{"width": ')
    desktop.fill("#f-priority", "11")
    desktop.click("#run-form button[type=submit]")
    desktop.wait_for_selector("#error-summary")
    screenshot(desktop, f"task-run-errors-{theme}")
    problems.extend(f"run errors: contrast {p}" for p in contrast_problems(desktop))
    # The key shown once is the answer to a form, so it has no address of its own.
    for page, suffix in ((desktop, ""), (phone, "-phone")):
        page.goto("/dashboard/api-keys")
        page.fill("#f-name", f"screenshot {theme}{suffix}")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#new-key")
        if has_horizontal_scroll(page):
            problems.append(f"api-key-created{suffix}: horizontal scroll")
        problems.extend(f"new key{suffix}: contrast {p}" for p in contrast_problems(page))
        screenshot(page, f"api-key-created-{theme}{suffix}")
    assert not problems, "\n".join(problems)


def test_theme_toggle_is_remembered_across_reloads(site: Site) -> None:
    page = site.new_page(color_scheme="light")
    site.sign_in(page)
    background = "() => getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    page.click("#theme-toggle")
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    dark = page.evaluate(background)
    assert dark != light
    assert page.get_attribute("#theme-toggle", "aria-label") == "Switch to light theme"
    page.goto("/dashboard/tasks")
    page.reload()
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    assert page.evaluate(background) == dark
    page.click("#theme-toggle")
    page.reload()
    assert page.evaluate("() => document.documentElement.dataset.theme") == "light"
    assert page.evaluate(background) == light


_LOOK = """() => {
  const style = (selector) => getComputedStyle(document.querySelector(selector));
  const drawn = (selector) =>
    style(selector).display !== "none" && style(selector).stroke !== "rgba(0, 0, 0, 0)";
  return {
    background: style("body").backgroundColor,
    text: style("body").color,
    button: style("button[type=submit]").backgroundColor,
    moon: drawn("#theme-toggle .icon-moon"),
    sun: drawn("#theme-toggle .icon-sun"),
  };
}"""


@pytest.mark.parametrize("system", ["light", "dark"])
def test_the_viewers_theme_beats_the_systems(site: Site, system: str) -> None:
    """One palette serves both ways in: the system's preference and html[data-theme]."""
    other = "dark" if system == "light" else "light"
    looks = {}
    for scheme in ("light", "dark"):
        page = site.new_page(DESKTOP, color_scheme=scheme)
        page.goto("/dashboard/login")
        looks[scheme] = page.evaluate(_LOOK)
    assert looks["light"]["background"] != looks["dark"]["background"]
    # The moon offers the dark theme, the sun the light one: one of them at a time.
    assert (looks["light"]["moon"], looks["light"]["sun"]) == (True, False)
    assert (looks["dark"]["moon"], looks["dark"]["sun"]) == (False, True)

    page = site.new_page(DESKTOP, color_scheme=system)
    page.goto("/dashboard/login")
    for chosen in (system, other):
        page.evaluate(f"() => document.documentElement.setAttribute('data-theme', '{chosen}')")
        assert page.evaluate(_LOOK) == looks[chosen], chosen
        assert contrast_problems(page) == [], chosen
        screenshot(page, f"login-chosen-{chosen}-on-{system}-system")


def test_the_dashboard_is_usable_with_the_keyboard(site: Site) -> None:
    page = site.new_page()
    page.goto("/dashboard/login")
    assert page.evaluate("() => document.activeElement.id") == "email"  # autofocus
    page.keyboard.type("admin@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("admin-password-123")
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/")
    page.keyboard.press("Tab")  # the skip link comes first ...
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")  # ... and leads past the navigation
    assert page.evaluate("() => document.activeElement.id") == "main"
    # Focus is visible: the focused element gets an outline.
    page.focus("nav >> text=Overview")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Tasks"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/tasks")
