"""README's curl tour, read from README.md at test time and run as written through bash
and curl against a fresh daemon whose admin is the default one of a first start. Only
the port and the admin's password are filled in; every command must succeed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import Daemons
from tests.e2e.plugins import api_call, sign_in
from tests.e2e.readme import code_blocks
from tests.services import unavailable

PASSWORD = "readme-tour-password"
DEFAULT_ADMIN = "admin@localhost"
_PASSWORD_LINE = re.compile(r"^PASSWORD=.*$", re.MULTILINE)


def tour(port: int) -> str:
    script = "\n".join(code_blocks("The API with curl", "sh"))
    assert script.count("localhost:8080") >= 5, "the tour no longer talks to localhost:8080"
    assert len(_PASSWORD_LINE.findall(script)) == 1, "the tour no longer sets PASSWORD once"
    script = _PASSWORD_LINE.sub(f"PASSWORD='{PASSWORD}'", script)
    return script.replace("localhost:8080", f"127.0.0.1:{port}")


def test_the_readme_curl_tour_runs_as_written(daemons: Daemons, tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if shutil.which("curl") is None or bash is None:
        unavailable("curl and bash", "they are not installed (apt-get install curl)")
    assert bash is not None
    # The first start's own admin: no TASKFLOW_ADMIN_EMAIL, as for a reader.
    daemon = daemons.start(env={"TASKFLOW_ADMIN_EMAIL": None, "TASKFLOW_ADMIN_PASSWORD": PASSWORD})
    assert daemon.port is not None
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}

    done = subprocess.run(
        [bash, "-e", "-u", "-o", "pipefail", "-c", tour(daemon.port)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    token = sign_in(daemon, DEFAULT_ADMIN, PASSWORD)
    status, tasks = api_call(daemon, "GET", "/api/v1/tasks", token)
    assert status == 200
    names = {t["name"]: t for t in tasks["items"]}
    assert set(names) == {"ping", "flaky"}
    assert names["ping"]["cronExpression"] == "*/5 * * * * *"
    # The retried dead letter got one more attempt (the third): the tour's retry took.
    deadline = time.monotonic() + 30
    while True:
        path = f"/api/v1/tasks/{names['flaky']['id']}/executions"
        [execution] = api_call(daemon, "GET", path, token)[1]["items"]
        if execution["attempts"] == 3 and execution["status"] == "FAILED":
            break
        assert time.monotonic() < deadline, execution
        time.sleep(0.05)
