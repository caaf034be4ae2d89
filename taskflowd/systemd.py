"""systemd integration without a dependency: sd_notify over `$NOTIFY_SOCKET`.

`SystemdNotifier` tells the service manager READY=1 once the daemon serves, STATUS= with
a short summary, STOPPING=1 when shutdown begins, and, when the unit sets `WatchdogSec`,
WATCHDOG=1 every half `WATCHDOG_USEC` — but only while the process is healthy: the
event loop runs the watchdog task (a blocked loop sends nothing) and the health probe
(the daemon passes the store's ping for an embedded SQLite database, none for a remote
one) answers in time. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

from taskflowd.background import Supervisor

log = logging.getLogger("taskflowd.systemd")

HealthProbe = Callable[[], Awaitable[object]]
Summary = Callable[[], str]
STATUS_INTERVAL_S = 10.0
"""How often STATUS= is refreshed when no watchdog sets a faster pace."""


def notify_address(env: Mapping[str, str]) -> str | bytes | None:
    """The socket address in `$NOTIFY_SOCKET`: a path, or an abstract name for `@name`.
    None when unset or of a kind we do not speak (e.g. vsock)."""
    raw = env.get("NOTIFY_SOCKET", "")
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """Half of `$WATCHDOG_USEC` in seconds when the watchdog is meant for `pid`, else None."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    target = env.get("WATCHDOG_PID", "")
    if target and (not target.isdigit() or int(target) != pid):
        return None
    return int(usec) / 2_000_000


class SystemdNotifier:
    """A daemon component: `start()` begins the watchdog/status loop, `stop()` ends it.

    `env` is read once, at construction (inject a mapping in tests); nothing is sent
    when it has no usable `NOTIFY_SOCKET`.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        *,
        env: Mapping[str, str] | None = None,
        health: HealthProbe | None = None,
        health_timeout_s: float = 5.0,
        summary: Summary | None = None,
        pid: int | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._supervisor = supervisor
        self._address = notify_address(env)
        self._watchdog_s = watchdog_interval_s(env, os.getpid() if pid is None else pid)
        self._health = health
        self._health_timeout_s = health_timeout_s
        self._summary = summary
        self._socket: socket.socket | None = None
        self._last_status: str | None = None
        self._running = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        return self._watchdog_s if self.enabled else None

    # --- sending -----------------------------------------------------------------------
    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines as one datagram; False when not sent. Never blocks and
        never raises: a full or vanished socket costs one message, not the daemon."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto(message, self._address)
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        if not status:
            self.send("READY=1")
            return
        self._last_status = _one_line(status)
        self.send("READY=1", f"STATUS={self._last_status}")

    def status(self, text: str) -> None:
        text = _one_line(text)
        if text != self._last_status:
            self.send(f"STATUS={text}")
            self._last_status = text

    def stopping(self, status: str = "shutting down") -> None:
        self._last_status = _one_line(status)
        self.send("STOPPING=1", f"STATUS={self._last_status}")

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if not self.enabled or self._running:
            return
        self._running = True
        self._supervisor.spawn("systemd.watchdog", self._loop)

    async def stop(self) -> None:
        if self._running:
            await self._supervisor.cancel("systemd.watchdog")
            self._running = False
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def healthy(self) -> bool:
        """The event loop runs (we are here) and the health probe answers in time."""
        if self._health is None:
            return True
        timeout_s = self._health_timeout_s
        if self._watchdog_s is not None:
            timeout_s = min(timeout_s, self._watchdog_s * 0.8)  # answer before the next ping
        try:
            async with asyncio.timeout(timeout_s):
                await self._health()
        except Exception as exc:
            log.warning("health check failed; withholding the watchdog ping: %s", exc)
            return False
        return True

    async def _loop(self) -> None:
        interval = self._watchdog_s or STATUS_INTERVAL_S
        while True:
            started = time.monotonic()
            if self._watchdog_s is not None and await self.healthy():
                self.send("WATCHDOG=1")
            if self._summary is not None:
                try:
                    self.status(self._summary())
                except Exception:
                    log.warning("could not build the STATUS= summary", exc_info=True)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
