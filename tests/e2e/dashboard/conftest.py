"""A real daemon and a real headless Chromium (Debian's, driven by Playwright).

Every test gets a fresh daemon on SQLite and a fresh browser context. The `page` fixture
fails the test on any console error or uncaught exception in the page; a document that
answered 4xx on purpose (a 404 page, a form sent back with its errors) is not an error.
Without Chromium or Playwright the tests skip, saying why, unless CI=true, where they
fail instead: CI installs both.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DaemonProcess, Daemons

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: end-to-end test in headless Chromium (needs /usr/bin/chromium)"
    )


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. Not per session: Playwright's synchronous API keeps
    its event loop marked as running, which asyncio tests in other modules cannot share."""
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class PageProblems:
    """Console errors and page errors seen by one page, minus deliberate 4xx documents."""

    errors: list[str] = field(default_factory=list)
    expected_documents: set[str] = field(default_factory=set)

    def console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        deliberate = url in self.expected_documents and "status of 4" in message.text
        if not deliberate:
            self.errors.append(f"console: {message.text} ({url})")

    def response(self, response: Any) -> None:
        request = response.request
        if request.is_navigation_request() and 400 <= response.status < 500:
            self.expected_documents.add(response.url)

    def page_error(self, error: Any) -> None:
        self.errors.append(f"page error: {error}")


@pytest.fixture
def dashboard_daemon(daemons: Daemons) -> DaemonProcess:
    return daemons.start()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for all the tests of a module, for modules whose tests each work on
    records of their own (a module opts in by making `dashboard_daemon` return it)."""
    daemons = Daemons(tmp_path_factory.mktemp("shared-daemon"))
    try:
        yield daemons.start()
    finally:
        daemons.close_all()


class Site:
    """A browser context on one daemon, with helpers for signing in and for the API."""

    def __init__(self, browser: Any, daemon: DaemonProcess) -> None:
        self.browser = browser
        self.daemon = daemon
        self.contexts: list[Any] = []
        self.problems: list[PageProblems] = []

    def url(self, path: str) -> str:
        return self.daemon.url(path)

    def new_page(self, viewport: dict[str, int] | None = None, color_scheme: str = "light") -> Any:
        context = self.browser.new_context(
            viewport=viewport or DESKTOP, color_scheme=color_scheme, base_url=self.url("")
        )
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        problems = PageProblems()
        self.problems.append(problems)
        page.on("console", problems.console)
        page.on("pageerror", problems.page_error)
        page.on("response", problems.response)
        return page

    def sign_in(self, page: Any, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
        page.goto("/dashboard/login")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("form button[type=submit]")
        page.wait_for_url("**/dashboard/")

    def close(self) -> None:
        for context in self.contexts:
            context.close()

    def all_errors(self) -> list[str]:
        return [e for p in self.problems for e in p.errors]

    # --- the JSON API, for setting things up quickly --------------------------------------
    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        org: str | None = None,
    ) -> tuple[int, Any]:
        """Call the JSON API; `org` (id or slug) goes in the X-Taskflow-Org header."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url(path), data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if org:
            request.add_header("X-Taskflow-Org", org)
        try:
            with _NO_PROXY.open(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
                return exc.code, json.loads(raw) if raw else None

    def token(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
        status, body = self.api(
            "POST", "/api/v1/auth/login", {"email": email, "password": password}
        )
        assert status == 200, body
        return str(body["accessToken"])

    def create_task(self, token: str, **fields: Any) -> dict[str, Any]:
        status, body = self.api("POST", "/api/v1/tasks", fields, token=token)
        assert status == 201, body
        return dict(body)


@pytest.fixture
def site(browser: Any, dashboard_daemon: DaemonProcess) -> Iterator[Site]:
    s = Site(browser, dashboard_daemon)
    yield s
    errors = s.all_errors()
    s.close()
    assert not errors, "errors in the browser:\n" + "\n".join(errors)


def cookie_opener() -> tuple[urllib.request.OpenerDirector, CookieJar]:
    """A urllib opener that keeps cookies and ignores proxies (for non-browser checks)."""
    jar = CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )
    return opener, jar


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def has_horizontal_scroll(page: Any) -> bool:
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
    )


# WCAG 2.x contrast of every visible piece of text against its (blended) background:
# 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). Disabled controls are exempt.
_CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(",").map((s) => parseFloat(s));
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const lum = (c) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const backdrop = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const bg = parse(getComputedStyle(n).backgroundColor);
      if (bg && bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
    }
    let c = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) c = blend(layers[i], c);
    return c;
  };
  const faded = (el) => {
    for (let n = el; n; n = n.parentElement) {
      if (parseFloat(getComputedStyle(n).opacity) < 1) return true;
    }
    return false;
  };
  const problems = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest("[hidden], .sr-only, option, script, style, title")) continue;
    if (el.closest(":disabled") || faded(el) || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const inSvg = el instanceof SVGElement;
    let fg = parse(inSvg ? style.fill : style.color);
    if (!fg) continue;
    const bg = backdrop(inSvg ? el.closest(".chart") || el : el);
    fg = blend(fg, bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    if (ratio < needed) {
      problems.push(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 40)}" ` +
        `${ratio.toFixed(2)}:1 < ${needed}:1`);
    }
  }
  return problems;
}
"""


def contrast_problems(page: Any) -> list[str]:
    return list(page.evaluate(_CONTRAST_JS))
