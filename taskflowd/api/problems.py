"""RFC 9457 problem details: the one shape of every error the API answers with.

A problem carries `type`, `title`, `status`, `detail`, a stable machine `code`, the
`requestId` of the request, and for 422 an `errors` list naming each bad field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from taskflowd.domain.errors import FieldError
from taskflowd.logs import request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://taskflowd.dev/problems/"


def status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    code: str,
    title: str | None = None,
    detail: str = "",
    errors: Sequence[FieldError] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or status_title(status),
        "status": status,
        "detail": detail or status_title(status),
        "code": code,
        "requestId": request_id_var.get() or "",
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body


def problem_response(
    status: int,
    code: str,
    title: str | None = None,
    detail: str = "",
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(problem_body(status, code, title, detail, errors)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


class ApiError(Exception):
    """Raise from a handler (or anything it calls) to answer with a problem response."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str | None = None,
        detail: str = "",
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return problem_response(
            self.status, self.code, self.title, self.detail, self.errors, self.headers
        )
