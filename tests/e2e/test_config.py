"""A bad configuration stops the process at once with exit code 2 and one line naming
the key; `check-config` shows a good one without revealing secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskflowd.config import known_keys
from tests.e2e.conftest import clean_env, run_cli

SECRET = "s" * 40
BAD_CONFIGS = {
    "env value of the wrong type": (
        [],
        {"TASKFLOW_WORKER__CONCURRENCY": "abc"},
        "",
        "worker.concurrency",
    ),
    "env value out of range": ([], {"TASKFLOW_WORKER__LEASE_S": "1"}, "", "worker.lease_s"),
    "unknown env variable": (
        [],
        {"TASKFLOW_WORKR__CONCURRENCY": "4"},
        "",
        "TASKFLOW_WORKR__CONCURRENCY",
    ),
    "unknown key in the file": (
        ["--config", "taskflowd.toml"],
        {},
        "[worker]\nconcurency = 4\n",
        "worker.concurency",
    ),
    "unknown section in the file found by default": (
        [],
        {},
        "[wroker]\nconcurrency = 4\n",
        "wroker",
    ),
    "wrong type in the file": (
        ["--config", "taskflowd.toml"],
        {},
        '[http]\nport = "eighty"\n',
        "http.port",
    ),
    "file that is not TOML": (["--config", "taskflowd.toml"], {}, "[worker\n", "config"),
    "missing file named by TASKFLOW_CONFIG": (
        [],
        {"TASKFLOW_CONFIG": "nowhere.toml"},
        "",
        "config",
    ),
    "unsupported database": (["--database", "mysql://x"], {}, "", "database"),
    "bad port flag": (["--port", "http"], {}, "", "http.port"),
    "malformed encryption key": (
        [],
        {"TASKFLOW_SECURITY__ENCRYPTION_KEYS": "c2hvcnQ="},
        "",
        "security.encryption_keys: key 0 decodes to 5 bytes",
    ),
}


ENCRYPTION_KEY = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
"""A well-formed key: 32 bytes in base64."""


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_serve_with_a_bad_config_exits_2_naming_the_key(workdir: Path, case: str) -> None:
    args, env, toml, key = BAD_CONFIGS[case]
    if toml:
        (workdir / "taskflowd.toml").write_text(toml)

    done = run_cli("serve", *args, cwd=workdir, env=clean_env(env), timeout_s=30)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert key in lines[0]
    assert "Traceback" not in done.stderr
    assert not (workdir / "taskflowd.db").exists(), "a bad config must not touch the database"


def test_check_config_prints_every_key_and_hides_secrets(workdir: Path) -> None:
    (workdir / "site.toml").write_text('[worker]\nconcurrency = 7\n[log]\nlevel = "WARNING"\n')
    env = clean_env(
        {
            "TASKFLOW_AUTH__JWT_SECRET": SECRET,
            "TASKFLOW_ADMIN_PASSWORD": "admin-secret-pw",
            "TASKFLOW_METRICS__TOKEN": "metrics-secret-token",
            "TASKFLOW_SECURITY__ENCRYPTION_KEYS": ENCRYPTION_KEY,
        }
    )

    done = run_cli(
        "check-config",
        "--config",
        "site.toml",
        "--database",
        "postgresql://app:db-secret-pw@db.example/taskflow",
        cwd=workdir,
        env=env,
    )

    assert done.returncode == 0, done.stderr
    shown = dict(line.split(" = ", 1) for line in done.stdout.splitlines() if " = " in line)
    assert list(shown) == list(known_keys())
    assert shown["auth.jwt_secret"] == "(set)"
    assert shown["admin_password"] == "(set)"
    assert shown["metrics.token"] == "(set)"
    assert shown["security.encryption_keys"] == "(set)"
    for secret in (
        SECRET,
        "admin-secret-pw",
        "metrics-secret-token",
        "db-secret-pw",
        ENCRYPTION_KEY,
    ):
        assert secret not in done.stdout + done.stderr
    assert shown["worker.concurrency"] == "7"
    assert shown["log.level"] == "'WARNING'"
    assert shown["auth.access_token_ttl_s"] == "900", "not a secret: show its value"
    assert "db.example/taskflow" in shown["database"]
    assert done.stdout.rstrip().endswith("configuration OK")


def test_check_config_with_a_bad_config_exits_2(workdir: Path) -> None:
    env = clean_env({"TASKFLOW_SCHEDULER__LOOKAHEAD_MS": "-1"})

    done = run_cli("check-config", cwd=workdir, env=env)

    assert done.returncode == 2
    assert "scheduler.lookahead_ms" in done.stderr
