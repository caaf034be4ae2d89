"""taskflowd.service: the settings the issue asks for, and `systemd-analyze verify`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from taskflowd.config import WorkerSettings
from tests.services import unavailable

UNIT = Path(__file__).resolve().parents[3] / "taskflowd.service"


def directives(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, keys in `Section.Key` form, values in order."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|min)?", value)
    assert match, f"unexpected time span {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_unit_declares_notify_watchdog_and_sandboxing() -> None:
    unit = directives(UNIT.read_text())
    expected = {
        "Service.Type": "notify",
        "Service.NotifyAccess": "main",
        "Service.Restart": "on-failure",
        "Service.StateDirectory": "taskflowd",
        "Service.ConfigurationDirectory": "taskflowd",
        "Service.WorkingDirectory": "/var/lib/taskflowd",
        "Service.KillSignal": "SIGTERM",
        "Service.ProtectSystem": "strict",
        "Service.ProtectHome": "yes",
        "Service.PrivateTmp": "yes",
        "Service.PrivateDevices": "yes",
        "Service.NoNewPrivileges": "yes",
        "Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "Service.SystemCallArchitectures": "native",
        "Service.ProtectKernelTunables": "yes",
        "Service.ProtectKernelModules": "yes",
        "Service.ProtectKernelLogs": "yes",
        "Service.ProtectControlGroups": "yes",
        "Service.RestrictNamespaces": "yes",
        "Service.LockPersonality": "yes",
        "Service.CapabilityBoundingSet": "",
        "Service.UMask": "0077",
        "Install.WantedBy": "multi-user.target",
    }
    for key, value in expected.items():
        assert unit.get(key, [None])[0] == value, key
    assert "@system-service" in unit["Service.SystemCallFilter"]
    assert unit["Service.User"] == ["taskflowd"] or unit.get("Service.DynamicUser") == ["yes"]
    assert unit["Service.ExecStart"][0].split()[1] == "serve"
    # The watchdog is pinged at half the interval; stopping outlasts the job grace period.
    assert _seconds(unit["Service.WatchdogSec"][0]) >= 10
    grace = WorkerSettings().shutdown_grace_s
    assert _seconds(unit["Service.TimeoutStopSec"][0]) > grace + 5


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze", "install the systemd package")
        return
    # verify checks that ExecStart= exists: point it at a stand-in executable.
    fake = tmp_path / "taskflowd"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = UNIT.read_text()
    original = directives(text)["Service.ExecStart"][0].split()[0]
    unit = tmp_path / "taskflowd.service"
    unit.write_text(text.replace(f"ExecStart={original}", f"ExecStart={fake}"))
    done = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "taskflowd.service" not in output, output  # no warnings about our unit either


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "taskflowd.service"
    unit.write_text(UNIT.read_text())
    done = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate units offline: {done.stderr.strip()}")
    assert float(match.group(1)) <= 2.0, done.stdout
