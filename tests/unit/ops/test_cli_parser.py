"""The command line builds the client commands' parsers (most of its building, ~5 ms of
every start, issue 12) only when the command may be one of theirs."""

from __future__ import annotations

from typing import Any

import pytest

from taskflowd import cli, client_cli, commands


def _count_client_builds(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    built: list[object] = []
    add_commands = client_cli.add_commands

    def counted(sub: Any) -> None:
        built.append(sub)
        add_commands(sub)

    monkeypatch.setattr(client_cli, "add_commands", counted)
    return built


def test_a_daemon_command_builds_no_client_command_parser(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built = _count_client_builds(monkeypatch)
    assert cli.main(["version"]) == 0
    assert built == []
    assert capsys.readouterr().out.startswith("taskflowd ")


@pytest.mark.parametrize("argv", [["--help"], ["task", "--help"], ["runs", "--help"]])
def test_help_and_client_commands_have_the_whole_parser(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built = _count_client_builds(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert len(built) == 1
    assert "usage: taskflowd" in capsys.readouterr().out


def test_the_daemon_commands_are_those_the_commands_module_runs_and_version() -> None:
    assert {*commands.COMMANDS, "version"} == cli.DAEMON_COMMANDS
    assert not cli.DAEMON_COMMANDS & client_cli.COMMANDS
