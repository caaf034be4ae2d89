"""The payload models of the built-in handlers (pydantic), imported on a node's first
payload check or run of `sleep`, `fail`, `http` or `shell`, not to start (issue 12)."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taskflowd.handlers.http_rules import DELIVERY_HEADERS, RESERVED_HEADERS, TOKEN, checked_url

MAX_SLEEP_S = 86_400.0
StatusCode = Annotated[int, Field(ge=100, le=599)]
Arg = Annotated[str, Field(max_length=128 * 1024)]


class _Strict(BaseModel):
    # strict: `true` is not a number and "3" is not an int; forbid: a misspelt key is an
    # error the user sees at creation time, not a silently ignored option. defer_build:
    # the validator is built on first use, not at start-up (as for every payload model).
    model_config = ConfigDict(
        strict=True, extra="forbid", allow_inf_nan=False, frozen=True, defer_build=True
    )


class SleepPayload(_Strict):
    seconds: float = Field(ge=0, le=MAX_SLEEP_S)


class FailPayload(_Strict):
    message: str = Field(default="failed on purpose", max_length=10_000)
    until_attempt: int | None = Field(default=None, alias="untilAttempt", ge=1)


class HttpPayload(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)

    url: str = Field(min_length=1, max_length=8192)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, max_length=100)
    body: Any = None
    expect_status: list[StatusCode] | None = Field(
        default=None, alias="expectStatus", min_length=1, max_length=100
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return checked_url(value)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if name.lower() in RESERVED_HEADERS | DELIVERY_HEADERS:
                raise ValueError(f"header {name!r} is set by taskflowd and cannot be given")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break or NUL")
        return value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_status_is_a_list(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        return value


def _no_nul(text: str, what: str) -> None:
    if "\0" in text:
        raise ValueError(f"{what} must not contain NUL characters")


class ShellPayload(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)

    argv: list[Arg] = Field(min_length=1, max_length=256)
    cwd: str | None = Field(default=None, max_length=4096)
    env: dict[str, str] | None = Field(default=None, max_length=256)

    @field_validator("argv")
    @classmethod
    def _check_argv(cls, value: list[str]) -> list[str]:
        if not value[0]:
            raise ValueError("the program (first item) must not be empty")
        for arg in value:
            _no_nul(arg, "arguments")
        return value

    @field_validator("cwd")
    @classmethod
    def _check_cwd(cls, value: str | None) -> str | None:
        if value is not None:
            _no_nul(value, "cwd")
            # Relative to what? The daemon's working directory is nobody's business.
            if not os.path.isabs(value):
                raise ValueError("must be an absolute path")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (value or {}).items():
            if not name or "=" in name:
                raise ValueError(f"variable name {name!r} must be non-empty and without '='")
            _no_nul(name + text, f"variable {name!r}")
        return value
