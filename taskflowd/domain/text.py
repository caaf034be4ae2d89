"""The one rule for text a client sends: no NUL character (U+0000), anywhere.

PostgreSQL refuses NUL in `text` columns, so a name, a time zone or a search term with
one could not be stored or even looked up. Rather than a rule per column, every string a
client sends (JSON bodies with their object keys and nested payloads, query strings,
dashboard forms) is held to it and refused with a 422 naming the field, on SQLite too,
so a deployment can move between the databases without surprises.

What handlers produce is not input: results and errors are JSON documents, stored as
JSON text in which a NUL is the six characters `\\u0000`, so they keep a NUL faithfully.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError

NUL = "\x00"
NUL_MESSAGE = "must not contain a NUL character (U+0000)"
NUL_KEY_MESSAGE = "has a key that contains a NUL character (U+0000)"
MAX_REPORTED = 20
"""Errors reported for one document at most: enough to fix it, bounded for a hostile one."""


def field_path(loc: Sequence[int | str]) -> str:
    """`("payload", "headers", 0)` → `payload.headers[0]`; the whole document is `$`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "$"


def _walk(value: JSON, loc: tuple[int | str, ...]) -> Iterator[FieldError]:
    # Iterative, so a deeply nested document cannot exhaust the interpreter's stack.
    stack: list[tuple[JSON, tuple[int | str, ...]]] = [(value, loc)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                yield FieldError(field_path(where), NUL_MESSAGE)
        elif isinstance(node, dict):
            if any(NUL in key for key in node):
                yield FieldError(field_path(where), NUL_KEY_MESSAGE)
            items = [(v, (*where, k)) for k, v in node.items() if NUL not in k]
            stack.extend(reversed(items))
        elif isinstance(node, list):
            stack.extend(reversed([(v, (*where, i)) for i, v in enumerate(node)]))


def nul_errors(value: JSON, loc: Sequence[int | str] = ()) -> list[FieldError]:
    """One error per string (or object with such a key) in `value` that holds a NUL,
    named by its path under `loc`, in document order; at most MAX_REPORTED."""
    errors: list[FieldError] = []
    for error in _walk(value, tuple(loc)):
        errors.append(error)
        if len(errors) == MAX_REPORTED:
            break
    return errors
