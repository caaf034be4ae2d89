"""The administrative commands: users, migrations, version, help."""

from __future__ import annotations

import asyncio
from pathlib import Path

import bcrypt
import pytest

from taskflowd import __version__
from taskflowd.store import open_store
from tests.e2e.conftest import clean_env, run_cli

COMMANDS = [
    [],
    ["serve"],
    ["migrate"],
    ["check-config"],
    ["version"],
    ["backup"],
    ["bench"],
    ["user"],
    ["user", "create"],
    ["user", "list"],
    ["user", "set-password"],
    ["user", "deactivate"],
    ["task"],
    ["task", "run"],
    ["runs", "wait"],
]


def _users(stdout: str) -> dict[str, tuple[str, str]]:
    """`user list` output as {email: (role, active)}."""
    lines = stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["EMAIL", "ROLE", "ACTIVE"], stdout
    table = {}
    for line in lines[1:]:
        email, role, active, _id = line.split()
        table[email] = (role, active)
    return table


def _user_row(url: str, email: str) -> tuple[str, int]:
    async def read() -> tuple[str, int]:
        store = open_store(url)
        await store.start()
        try:
            user = await store.get_user_by_email(email)
            assert user is not None
            return user.password_hash, user.token_version
        finally:
            await store.stop()

    return asyncio.run(read())


def test_user_commands(workdir: Path, sqlite_url: str) -> None:
    def cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        done = run_cli(*args, "--database", sqlite_url, cwd=workdir, stdin=stdin)
        return done.returncode, done.stdout, done.stderr

    code, out, err = cli(
        "user", "create", "bob@example.com", "--password-stdin", stdin="bob-pw-1\n"
    )
    assert code == 0, err
    assert "bob@example.com" in out
    code, out, err = cli(
        "user", "create", "Alice@Example.com", "--admin", "--password-stdin", stdin="alice-pw-1\n"
    )
    assert code == 0, err

    code, out, err = cli("user", "list")
    assert code == 0, err
    assert _users(out) == {
        "bob@example.com": ("USER", "yes"),
        "alice@example.com": ("ADMIN", "yes"),
    }

    code, out, err = cli(
        "user", "create", "BOB@example.com", "--password-stdin", stdin="another-pw\n"
    )
    assert code != 0
    assert "bob@example.com" in err
    assert "exists" in err
    assert len(err.strip().splitlines()) == 1, err

    old_hash, old_version = _user_row(sqlite_url, "bob@example.com")
    assert bcrypt.checkpw(b"bob-pw-1", old_hash.encode())
    code, out, err = cli(
        "user", "set-password", "bob@example.com", "--password-stdin", stdin="bob-pw-2\n"
    )
    assert code == 0, err
    new_hash, new_version = _user_row(sqlite_url, "bob@example.com")
    assert bcrypt.checkpw(b"bob-pw-2", new_hash.encode())
    assert new_version > old_version, "old access tokens must stop working"

    code, out, err = cli("user", "deactivate", "bob@example.com")
    assert code == 0, err
    code, out, err = cli("user", "list")
    assert _users(out)["bob@example.com"] == ("USER", "no")
    assert _users(out)["alice@example.com"] == ("ADMIN", "yes")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["user", "create", "carol@example.com", "--password-stdin"], "short\n", "password"),
        (["user", "create", "not-an-email", "--password-stdin"], "long-enough\n", "email"),
        (
            ["user", "set-password", "nobody@example.com", "--password-stdin"],
            "pw-long-1\n",
            "no user",
        ),
        (["user", "deactivate", "nobody@example.com"], None, "no user"),
    ],
)
def test_user_commands_refuse_bad_input(
    workdir: Path, sqlite_url: str, args: list[str], stdin: str | None, message: str
) -> None:
    done = run_cli(*args, "--database", sqlite_url, cwd=workdir, stdin=stdin)

    assert done.returncode == 1, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_user_commands_on_postgresql(workdir: Path, pg_url: str) -> None:
    create = run_cli(
        "user", "create", "dave@example.com", "--admin", "--password-stdin",
        "--database", pg_url, cwd=workdir, stdin="dave-pw-1\n",
    )  # fmt: skip
    assert create.returncode == 0, create.stderr

    listing = run_cli("user", "list", "--database", pg_url, cwd=workdir)

    assert listing.returncode == 0, listing.stderr
    assert _users(listing.stdout) == {"dave@example.com": ("ADMIN", "yes")}


def test_migrate_twice_is_harmless(workdir: Path) -> None:
    first = run_cli("migrate", cwd=workdir)
    second = run_cli("migrate", cwd=workdir)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "schema at version" in first.stdout
    assert first.stdout == second.stdout
    assert (workdir / "taskflowd.db").is_file()


def test_migrate_reports_an_unreachable_database_in_one_line(workdir: Path) -> None:
    done = run_cli("migrate", "--database", "postgresql://postgres@127.0.0.1:1/none", cwd=workdir)

    assert done.returncode == 1
    assert "cannot open the database" in done.stderr
    assert "Traceback" not in done.stderr


def test_version(workdir: Path) -> None:
    done = run_cli("version", cwd=workdir, env=clean_env(fast=False))

    assert done.returncode == 0
    assert done.stdout.strip() == f"taskflowd {__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "taskflowd")
def test_help(workdir: Path, command: list[str]) -> None:
    done = run_cli(*command, "--help", cwd=workdir)

    assert done.returncode == 0, done.stderr
    assert "usage: taskflowd" in done.stdout
    assert not (workdir / "taskflowd.db").exists()
