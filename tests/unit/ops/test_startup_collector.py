"""`taskflowd serve` runs its start-up, from reading its settings until it answers, with
the garbage collector paused: start-up makes tens of thousands of objects that live as
long as the node and almost no garbage, so the ~100 collections it triggered were wasted
CPU before the node answered (issue 12). Once the node serves, what start-up made is
frozen out of later collections and the collector runs again, collecting its youngest
generation less often than Python's default (every job makes short-lived objects).
Checked in a fresh interpreter running the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SERVE = """
import gc, http.client, json, os, signal, socket, threading, time
from taskflowd import cli

collections = []
gc.callbacks.append(
    lambda phase, info: collections.append(time.monotonic()) if phase == "start" else None
)
seen = {{}}
load_settings = cli.load_settings


def settings_then_mark(*args, **kwargs):
    seen["command"] = time.monotonic()
    return load_settings(*args, **kwargs)


cli.load_settings = settings_then_mark


def probe() -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sent = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", {port}, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                break
        except OSError:
            seen["refused"] = sent
        time.sleep(0.005)
    begun, refused = seen.get("command", 0.0), seen.get("refused", 0.0)
    seen["collections_before"] = sum(begun < t < refused for t in collections)
    seen["probes_refused"] = begun < refused
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=probe, daemon=True).start()
code = cli.main(["serve", "--database", {database!r}, "--port", "{port}"])
seen["exit"] = code
seen["enabled_after"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count()
seen["young_threshold"] = gc.get_threshold()[0]
print(json.dumps(seen))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_collects_no_garbage_before_it_answers_then_resumes(tmp_path: Path) -> None:
    code = SERVE.format(database=f"sqlite:///{tmp_path / 'gc.db'}", port=_free_port())
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["exit"] == 0
    assert seen["probes_refused"], "a probe must have been refused after the command began"
    assert seen["collections_before"] == 0
    assert seen["enabled_after"] is True
    assert seen["frozen"] > 10_000
    assert seen["young_threshold"] == 10_000  # Python's default: 700


FAILED_START = """
import gc, json
from taskflowd import cli

code = cli.main(["serve", "--database", {database!r}, "--port", "0"])
print(json.dumps({{"exit": code, "enabled_after": gc.isenabled()}}))
"""


def test_a_failed_start_leaves_the_collector_on(tmp_path: Path) -> None:
    """A node that cannot start never serves, so `Daemon.run` does not resume the
    collector: the command does, for whatever runs `cli.main` in-process after it."""
    database = f"sqlite:///{tmp_path / 'missing' / 'gc.db'}"
    out = subprocess.run(
        [sys.executable, "-c", FAILED_START.format(database=database)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen == {"exit": 1, "enabled_after": True}
