"""Rows rendered as JSON objects by the database itself.

A read that ends in an HTTP response would otherwise turn every column into a Python
object, the objects into an entity, the entity into a response model and that into JSON
again. A `Shape` names the JSON key and kind of each column once; the database builds
each row's JSON object (SQLite and PostgreSQL both can, without the GIL, beside the event
loop), and the caller joins the objects into a document.

Times come out as Python's `isoformat()` writes an aware UTC datetime
(`2026-05-01T09:00:00.123456+00:00`, no fraction when it is zero), so documents built
here and from entities in Python read the same. JSON columns are embedded as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from taskflowd.store.db import Dialect


class Kind(StrEnum):
    TEXT = "text"
    INT = "int"
    BOOL = "bool"
    TIME = "time"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    """The JSON key."""
    column: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Shape:
    """The JSON object of one row: its fields in order.

    A shape keys the cache of its SQL on every read, so its hash and its JSON keys are
    computed once, when it is made."""

    fields: tuple[Field, ...]
    _hash: int = field(init=False, repr=False, compare=False)
    _json_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(self.fields))
        json_keys = tuple(f.key for f in self.fields if f.kind is Kind.JSON)
        object.__setattr__(self, "_json_keys", json_keys)

    def __hash__(self) -> int:
        return self._hash

    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)

    def json_keys(self) -> tuple[str, ...]:
        return self._json_keys

    def only(self, keys: Iterable[str]) -> Shape:
        """The fields named in `keys`, in that order (each must be a key of this shape)."""
        by_key = {f.key: f for f in self.fields}
        return Shape(tuple(by_key[k] for k in keys))


def _sqlite_time(column: str) -> str:
    # Integer microseconds since the epoch; floor division keeps instants before 1970 right.
    seconds = f"(({column} - (({column} % 1000000) + 1000000) % 1000000) / 1000000)"
    micros = f"((({column} % 1000000) + 1000000) % 1000000)"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE "
        f"strftime('%Y-%m-%dT%H:%M:%S', {seconds}, 'unixepoch') || "
        f"CASE WHEN {micros} = 0 THEN '' ELSE printf('.%06d', {micros}) END || '+00:00' END"
    )


def _sqlite_value(field: Field, prefix: str) -> str:
    column = f"{prefix}{field.column}"
    if field.kind is Kind.TIME:
        return _sqlite_time(column)
    if field.kind is Kind.JSON:
        return f"json({column})"
    if field.kind is Kind.BOOL:
        return f"json(CASE WHEN {column} THEN 'true' ELSE 'false' END)"
    return column


def _postgres_time(column: str) -> str:
    # The session's time zone is UTC (see PostgresDatabase.connect). One to_char with the
    # fraction and the offset, whose zero fraction is cut: a quarter of the database's
    # time on a page of tasks went to the two to_char, date_part and CASE per time before.
    return f"replace(to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), '.000000+', '+')"


def _postgres_value(field: Field, prefix: str) -> str:
    column = f"{prefix}{field.column}"
    if field.kind is Kind.JSON:
        return f"{column}::json"
    if field.kind is Kind.TIME:
        return _postgres_time(column)
    return column


def json_object(shape: Shape, dialect: Dialect, prefix: str = "") -> str:
    """An SQL expression for the JSON object of one row (`prefix` qualifies columns)."""
    if dialect == "sqlite":
        parts = [f"'{f.key}', {_sqlite_value(f, prefix)}" for f in shape.fields]
        return f"json_object({', '.join(parts)})"
    parts = [f"'{f.key}', {_postgres_value(f, prefix)}" for f in shape.fields]
    return f"json_build_object({', '.join(parts)})"


def join_objects(items: Iterable[str]) -> str:
    """A JSON array of rendered objects."""
    return "[" + ",".join(items) + "]"
