"""The shell handler's payload rules."""

from __future__ import annotations

import pytest

from taskflowd.handlers.shell import ShellHandler


@pytest.mark.parametrize(
    "payload",
    [
        {"argv": ["true"]},
        {"argv": ["/bin/echo", "a b", "", "$HOME; rm -rf /"]},
        {"argv": ["env"], "cwd": "/tmp", "env": {"A": "1", "B_2": ""}},
        {"argv": ["x"], "cwd": None, "env": None},
        {"argv": ["x"] * 256},
    ],
)
def test_good_payloads(payload: object) -> None:
    assert ShellHandler().validate(payload) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "payload.argv"),
        ({"argv": []}, "payload.argv"),
        ({"argv": ["x"] * 257}, "payload.argv"),
        ({"argv": "ls -l"}, "payload.argv"),
        ({"argv": ["ls", 1]}, "payload.argv[1]"),
        ({"argv": ["ls", True]}, "payload.argv[1]"),
        ({"argv": [""]}, "payload.argv"),
        ({"argv": ["ls", "a\0b"]}, "payload.argv"),
        ({"argv": ["ls"], "cwd": "relative/dir"}, "payload.cwd"),
        ({"argv": ["ls"], "cwd": 7}, "payload.cwd"),
        ({"argv": ["ls"], "env": {"A=B": "x"}}, "payload.env"),
        ({"argv": ["ls"], "env": {"": "x"}}, "payload.env"),
        ({"argv": ["ls"], "env": {"A": 1}}, "payload.env.A"),
        ({"argv": ["ls"], "env": {"A": "x\0"}}, "payload.env"),
        ({"argv": ["ls"], "stdin": "data"}, "payload.stdin"),
        (["ls"], "payload"),
    ],
)
def test_bad_payloads(payload: object, field: str) -> None:
    assert [e.field for e in ShellHandler().validate(payload)] == [field]


def test_shell_is_admin_only() -> None:
    assert ShellHandler().spec().admin_only is True
