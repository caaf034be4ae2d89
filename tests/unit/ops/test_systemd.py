"""sd_notify over a real AF_UNIX datagram socket, as systemd would receive it."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from taskflowd.background import Supervisor
from taskflowd.systemd import SystemdNotifier, notify_address, watchdog_interval_s
from tests.integration.queue.polling import DEADLINE_S, eventually
from tests.unit.ops.notify import Listener, listening


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as bound:
        yield bound


def supervisor(fatal: list[str]) -> Supervisor:
    return Supervisor(lambda name, exc: fatal.append(f"{name}: {exc!r}"))


def test_addresses_and_watchdog_settings() -> None:
    assert notify_address({}) is None
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@abstract"}) == b"\0abstract"
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "42"}, 42) == 0.1
    assert watchdog_interval_s({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "41"}, 42) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}, 42) is None


async def test_nothing_is_sent_outside_systemd() -> None:
    fatal: list[str] = []
    notifier = SystemdNotifier(supervisor(fatal), env={})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False
    await notifier.start()
    notifier.ready("x")
    notifier.stopping()
    await notifier.stop()
    assert not fatal


async def test_ready_status_and_stopping(listener: Listener) -> None:
    fatal: list[str] = []
    notifier = SystemdNotifier(supervisor(fatal), env={"NOTIFY_SOCKET": listener.address})
    notifier.ready("serving on 127.0.0.1:8080,\n0 running jobs")
    assert (await listener.wait_for("READY=1")) == [
        "READY=1\nSTATUS=serving on 127.0.0.1:8080, 0 running jobs"
    ]
    notifier.status("3 running jobs")
    notifier.status("3 running jobs")  # unchanged: not sent again
    notifier.stopping()
    await listener.wait_for("STOPPING=1")
    assert listener.messages == [
        "READY=1\nSTATUS=serving on 127.0.0.1:8080, 0 running jobs",
        "STATUS=3 running jobs",
        "STOPPING=1\nSTATUS=shutting down",
    ]
    await notifier.stop()
    assert not fatal


async def test_abstract_socket_names_are_supported() -> None:
    name = f"taskflowd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.setblocking(False)
        notifier = SystemdNotifier(supervisor([]), env={"NOTIFY_SOCKET": f"@{name}"})
        notifier.ready()
        listener = Listener(sock, name)
        assert await listener.wait_for("READY=1") == ["READY=1"]
        await notifier.stop()


async def test_watchdog_pings_at_half_the_interval_while_healthy(listener: Listener) -> None:
    fatal: list[str] = []
    probes = 0

    async def healthy() -> None:
        nonlocal probes
        probes += 1

    env = {
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": "200000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    notifier = SystemdNotifier(supervisor(fatal), env=env, health=healthy)
    assert notifier.watchdog_interval_s == 0.1
    await notifier.start()
    try:
        await listener.wait_for("WATCHDOG=1", count=3)
    finally:
        await notifier.stop()
    assert probes >= 3
    assert not fatal


async def test_watchdog_is_withheld_while_the_store_is_unhealthy(listener: Listener) -> None:
    fatal: list[str] = []
    failures = 0
    healthy = False

    async def ping() -> None:
        nonlocal failures
        if not healthy:
            failures += 1
            raise ConnectionRefusedError("database down")

    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000"}
    notifier = SystemdNotifier(supervisor(fatal), env=env, health=ping)
    await notifier.start()
    try:

        async def three_failures() -> bool:
            return failures >= 3

        await eventually(three_failures, "three failed health checks")
        # Each failed check was followed by no ping: the socket has received nothing.
        assert listener.drain() == []
        healthy = True
        await listener.wait_for("WATCHDOG=1")
    finally:
        await notifier.stop()
    assert not fatal


async def test_a_probe_that_hangs_counts_as_unhealthy(listener: Listener) -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(DEADLINE_S * 10)

    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000"}
    notifier = SystemdNotifier(supervisor([]), env=env, health=hang, health_timeout_s=0.05)
    assert await notifier.healthy() is False
    assert started.is_set()
    assert listener.drain() == []


async def test_a_watchdog_meant_for_another_process_is_ignored(listener: Listener) -> None:
    env = {
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": "200000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    notifier = SystemdNotifier(supervisor([]), env=env)
    assert notifier.enabled
    assert notifier.watchdog_interval_s is None
