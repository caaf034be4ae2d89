"""Response bodies written straight from entities or rows, shaped by the response models.

Each response model (a pydantic class, which also documents the operation in the
OpenAPI document) declares the JSON keys and their order. `shape_of` turns it into a
`Shape`: the key, the column (and entity attribute) behind it, and how to write it. The
database renders rows in that shape for reads, and `render` writes an entity in the
same shape for writes, so a task reads the same whichever way it reached the client and
no response copies entity fields one by one.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Union, get_args, get_origin

import orjson
from pydantic import BaseModel, JsonValue

from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.store.render import Field, Kind, Shape


def _kind(annotation: Any) -> Kind:
    if annotation is JsonValue:
        return Kind.JSON
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _kind(inner[0])
    if annotation is datetime:
        return Kind.TIME
    if annotation is bool:
        return Kind.BOOL
    if annotation is int:
        return Kind.INT
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return Kind.TEXT
    raise TypeError(f"no JSON kind for {annotation!r}")


def shape_of(model: type[BaseModel], columns: Mapping[str, str] | None = None) -> Shape:
    """The shape of `model`'s fields: key = the field's alias, column = the field's name
    unless `columns` maps it to another (e.g. `timeout` → `timeout_ms`)."""
    renamed = columns or {}
    fields = []
    for name, info in model.model_fields.items():
        fields.append(Field(info.alias or name, renamed.get(name, name), _kind(info.annotation)))
    return Shape(tuple(fields))


def as_dict(shape: Shape, entity: Any) -> dict[str, Any]:
    """`entity` (whose attributes are named like the shape's columns) as a JSON-able dict."""
    return {f.key: getattr(entity, f.column) for f in shape.fields}


def render(shape: Shape, entity: Any) -> bytes:
    return orjson.dumps(as_dict(shape, entity))


def render_many(shape: Shape, entities: Iterable[Any]) -> bytes:
    return orjson.dumps([as_dict(shape, e) for e in entities])


def choose(shape: Shape, fields: str | None) -> Shape:
    """`shape` narrowed to the comma-separated `fields` (all when None); a 422 naming
    the unknown ones otherwise."""
    if fields is None:
        return shape
    wanted = list(dict.fromkeys(f.strip() for f in fields.split(",") if f.strip()))
    known = shape.keys()
    unknown = sorted(set(wanted) - set(known))
    if unknown or not wanted:
        raise ValidationFailed(
            [
                FieldError(
                    "fields",
                    f"unknown field(s): {', '.join(unknown) or '(none)'}; "
                    f"choose from {', '.join(sorted(known))}",
                )
            ]
        )
    return shape.only(wanted)
