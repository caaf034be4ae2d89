"""Handler plugins installed for real: a module and a `*.dist-info` with its entry points
in a directory of their own, put on a daemon subprocess's PYTHONPATH, where
`importlib.metadata` finds them exactly as it finds a pip-installed distribution; and
plain JSON calls to that daemon's API."""

from __future__ import annotations

import json
import os
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskflowd.handlers.plugins import PLUGIN_GROUP
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DaemonProcess

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def install_plugin(
    root: Path, source: str, entry_points: Mapping[str, str], *, module: str | None = None
) -> tuple[Path, str]:
    """Write `source` as a module of a unique name (or `module`) and a distribution whose
    `taskflowd.handlers` entry points are `entry_points` (name → attribute of the module,
    or a full `module:attr` reference). Returns the directory to put on the path and the
    module name."""
    module = module or f"tf_e2e_plugin_{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    dist = root / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = [f"[{PLUGIN_GROUP}]"]
    for name, target in entry_points.items():
        lines.append(f"{name} = {target if ':' in target else f'{module}:{target}'}")
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root, module


def with_path(root: Path, env: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """`env` (for `Daemons.start`) with `root` first on the daemon's PYTHONPATH."""
    current = os.environ.get("PYTHONPATH", "")
    return {**(env or {}), "PYTHONPATH": os.pathsep.join(p for p in (str(root), current) if p)}


def api_call(
    daemon: DaemonProcess, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    """(status, parsed JSON body or None) of one API request, without any proxy."""
    request = urllib.request.Request(
        daemon.url(path),
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _NO_PROXY.open(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None


def sign_in(daemon: DaemonProcess, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
    status, body = api_call(
        daemon, "POST", "/api/v1/auth/login", body={"email": email, "password": password}
    )
    assert status == 200, body
    return str(body["accessToken"])


USER_PASSWORD = "user-password-123"


def sign_up(daemon: DaemonProcess, email: str, password: str = USER_PASSWORD) -> str:
    """Register a USER through the API and return its access token."""
    body = {"email": email, "password": password, "firstName": "Uma", "lastName": "User"}
    status, created = api_call(daemon, "POST", "/api/v1/auth/register", body=body)
    assert status == 201, created
    return sign_in(daemon, email, password)
