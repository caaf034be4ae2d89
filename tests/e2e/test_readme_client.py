"""README's client section, read from README.md at test time and run as written against
a fresh daemon: the curl line that creates an API key, both Python examples and the shell
session of client commands. Only the address and the key are filled in."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from taskflowd.client import Client
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DaemonProcess, Daemons
from tests.e2e.readme import code_blocks
from tests.services import unavailable

SECTION = "The Python client and the command line"
README_URL = "http://127.0.0.1:8080"
README_KEY = "tfk_…"


@pytest.fixture
def daemon(daemons: Daemons) -> DaemonProcess:
    return daemons.start()


def filled(block: str, daemon: DaemonProcess, api_key: str) -> str:
    assert README_URL in block or "localhost:8080" in block, block
    block = block.replace(README_URL, daemon.url("")).replace(README_KEY, api_key)
    return block.replace("localhost:8080", daemon.url("").removeprefix("http://"))


def bash_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """PATH with a `taskflowd` that is this checkout's (whatever is installed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "taskflowd"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m taskflowd "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


def run_bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    if bash is None or shutil.which("curl") is None:
        unavailable("curl and bash", "they are not installed (apt-get install curl)")
    assert bash is not None
    return subprocess.run(
        [bash, "-e", "-u", "-o", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_the_readme_client_section_runs_as_written(daemon: DaemonProcess, tmp_path: Path) -> None:
    curl, session = code_blocks(SECTION, "sh")
    async_example, sync_example = code_blocks(SECTION, "python")
    with Client(daemon.url("")) as admin:
        token = admin.auth.login(ADMIN_EMAIL, ADMIN_PASSWORD).access_token

    created = run_bash(filled(curl, daemon, ""), bash_env(tmp_path, TOKEN=token), tmp_path)
    assert created.returncode == 0, created.stderr
    api_key = json.loads(created.stdout)["key"]
    assert api_key.startswith("tfk_")

    outputs = []
    for example in (async_example, sync_example):
        done = subprocess.run(
            [sys.executable, "-c", filled(example, daemon, api_key)],
            cwd=tmp_path, env=bash_env(tmp_path), capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{example}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        outputs.append(done.stdout)
    assert outputs[0].startswith("COMPLETED {'image': 'cat.png'}\n")
    # The run and at least the last of the batch (which was waited for) are listed.
    assert len(outputs[0].splitlines()) >= 3
    assert "404 not_found" in outputs[1]

    shell = run_bash(filled(session, daemon, api_key), bash_env(tmp_path), tmp_path)
    assert shell.returncode == 0, f"stdout:\n{shell.stdout}\nstderr:\n{shell.stderr}"
    assert '"status": "COMPLETED"' in shell.stdout
