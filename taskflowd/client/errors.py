"""What the client raises: every failure is a `TaskflowError`.

`ApiError` is an answer from the server (an RFC 9457 problem); `TransportError` means no
usable answer came (the server could not be reached, the connection broke, the request
timed out) after the retries the policy allows; `WaitTimeout`
(`taskflowd.client.resources`) ends `wait()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class TaskflowError(Exception):
    """Base of every error the client raises."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One bad field of a 422: its camelCase path (e.g. `items[3].payload`) and why."""

    field: str
    message: str


class ApiError(TaskflowError):
    """The server answered with an error status; the fields are those of its RFC 9457
    problem (`code` is the stable machine string to branch on)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str = "",
        type: str = "",
        errors: tuple[FieldProblem, ...] = (),
        request_id: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.type = type
        self.errors = errors
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        super().__init__(self.summary())

    def summary(self) -> str:
        """One line: status, code, detail, the bad fields, and the request id."""
        text = f"{self.status} {self.code}: {self.detail}"
        if self.errors:
            text += " (" + "; ".join(f"{e.field}: {e.message}" for e in self.errors) + ")"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text

    @classmethod
    def from_problem(
        cls, status: int, body: Any, reason: str, retry_after_s: float | None
    ) -> ApiError:
        """The error for a response of `status` whose decoded JSON body is `body` (None or
        anything else when the body was not a problem, e.g. a proxy's HTML page)."""
        if not isinstance(body, Mapping) or not isinstance(body.get("code"), str):
            return cls(
                status, f"http_{status}", reason or "HTTP error", retry_after_s=retry_after_s
            )
        raw_errors = body.get("errors")
        errors = tuple(
            FieldProblem(str(e.get("field", "")), str(e.get("message", "")))
            for e in (raw_errors if isinstance(raw_errors, list) else ())
            if isinstance(e, Mapping)
        )
        return cls(
            status,
            body["code"],
            str(body.get("detail") or body.get("title") or reason),
            title=str(body.get("title", "")),
            type=str(body.get("type", "")),
            errors=errors,
            request_id=str(body.get("requestId", "")),
            retry_after_s=retry_after_s,
        )


class TransportError(TaskflowError):
    """No answer from the server: connection refused or broken, or the request timed out,
    on every attempt the retry policy allowed."""


class ProtocolError(TaskflowError):
    """The server answered 2xx with a body this client cannot read (not the expected JSON);
    usually a proxy in between, or a server of another version."""
