"""What an `http` job may ask for, free of I/O: the URL and header rules its payload is
checked against, and the headers that taskflowd sets on every request itself."""

from __future__ import annotations

import re

from yarl import URL

TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Framing and routing headers belong to the client library; a user value would either
# be ignored or produce a malformed request.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
    }
)
DELIVERY_ID_HEADER = "X-Taskflow-Delivery-Id"
EXECUTION_ID_HEADER = "X-Taskflow-Execution-Id"
ATTEMPT_HEADER = "X-Taskflow-Attempt"
# The attempt's identity is taskflowd's to state: a payload naming one of these would make
# a receiver's idempotency check trust a value the task's author chose.
DELIVERY_HEADERS = frozenset(
    h.lower() for h in (DELIVERY_ID_HEADER, EXECUTION_ID_HEADER, ATTEMPT_HEADER)
)


def url_problem(url: URL) -> str | None:
    """What makes `url` unusable as a destination, ignoring its address, or None."""
    if url.scheme not in ("http", "https"):
        return "must be an absolute http or https URL"
    if not url.host:
        return "must name a host"
    if url.user is not None or url.password is not None:
        return "must not carry credentials; send them in an Authorization header"
    return None


def checked_url(value: str) -> str:
    """`value`, when it is a usable destination URL (`url_problem`); else ValueError
    saying why (the form a pydantic validator raises)."""
    try:
        problem = url_problem(URL(value))
    except (ValueError, TypeError):
        problem = "is not a valid URL"
    if problem is not None:
        raise ValueError(problem)
    return value
