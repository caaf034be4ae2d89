"""Live updates survive a restart of the daemon: the page reconnects by itself."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.conftest import Daemons
from tests.e2e.dashboard.conftest import Site

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_page_reconnects_after_the_daemon_restarts(browser: object, daemons: Daemons) -> None:
    port = str(free_port())
    first = daemons.start("--port", port)
    site = Site(browser, first)
    try:
        page = site.new_page()
        site.sign_in(page)
        status = page.locator("#live-status")
        page.wait_for_function(
            "() => document.querySelector('#live-status').dataset.state === 'live'"
        )
        assert first.terminate() == 0
        page.wait_for_function(
            "() => document.querySelector('#live-status').dataset.state === 'offline'"
        )
        assert "retrying" in (status.get_attribute("title") or "")
        # Same port, same database: the session cookie is still good after the restart.
        daemons.start("--port", port)
        page.wait_for_function(
            "() => document.querySelector('#live-status').dataset.state === 'live'",
            timeout=45_000,
        )
        page.locator(".toast", has_text="Live updates are back").wait_for()
        assert page.url.endswith("/dashboard/")  # never reloaded, never sent to sign in
    finally:
        errors = site.all_errors()
        site.close()
    # While the daemon was down the browser reports the refused connections; nothing else.
    unexpected = [
        e for e in errors if "WebSocket connection" not in e and "ERR_CONNECTION" not in e
    ]
    assert not unexpected, unexpected
