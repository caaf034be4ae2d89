"""JSON ↔ the client's frozen dataclasses, by their field types.

A field is read from its camelCase name, or from the name in its `json` metadata (so a
Python name can say its unit: `timeout_ms` reads `timeout`). Datetimes are ISO 8601,
enums their values, nested dataclasses, tuples and dicts are followed. Unknown JSON
fields are ignored, so a newer server does not break an older client; a missing one
without a default is a `ProtocolError`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from taskflowd.client.errors import ProtocolError

T = TypeVar("T")
Convert = Callable[[Any], Any]
_MISSING = dataclasses.MISSING


def camel(name: str) -> str:
    """`retry_history` → `retryHistory`, as the API spells its fields."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def json_name(field: dataclasses.Field[Any]) -> str:
    name: str = field.metadata.get("json") or camel(field.name)
    return name


def _optional(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _tuple_of(convert: Convert | None) -> Convert:
    if convert is None:
        return tuple
    return lambda values: tuple(convert(v) for v in values)


def _dict_of(convert: Convert | None) -> Convert:
    if convert is None:
        return dict
    return lambda values: {k: convert(v) for k, v in values.items()}


def _converter(tp: Any) -> Convert | None:
    """How to turn decoded JSON into `tp`; None when the JSON value is already one."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        inner = [arg for arg in get_args(tp) if arg is not type(None)]
        convert = _converter(inner[0]) if len(inner) == 1 else None
        return None if convert is None else _optional(convert)
    if origin is tuple:
        return _tuple_of(_converter(get_args(tp)[0]))
    if origin is dict:
        return _dict_of(_converter(get_args(tp)[1]))
    if tp is datetime:
        return datetime.fromisoformat
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return functools.partial(decode, tp)
    return None


@functools.cache
def _plan(cls: Any) -> tuple[tuple[str, str, Convert | None, Any], ...]:
    """(attribute, JSON name, converter, default) for each field of `cls`, worked out once."""
    hints = get_type_hints(cls)
    plan = []
    for field in dataclasses.fields(cls):
        default = field.default
        if field.default_factory is not _MISSING:
            default = field.default_factory()
        plan.append((field.name, json_name(field), _converter(hints[field.name]), default))
    return tuple(plan)


def decode(cls: type[T], data: Any) -> T:
    """An instance of the dataclass `cls` from its JSON object `data`."""
    if not isinstance(data, Mapping):
        raise ProtocolError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for attr, key, convert, default in _plan(cast(Hashable, cls)):
        try:
            value = data[key]
        except KeyError:
            if default is _MISSING:
                raise ProtocolError(f"{cls.__name__} without its field {key!r}") from None
            value = default
        else:
            if convert is not None:
                try:
                    value = convert(value)
                except (TypeError, ValueError, AttributeError) as exc:
                    raise ProtocolError(f"{cls.__name__}.{key}: {exc}") from None
        values[attr] = value
    return cls(**values)


_PLAIN = frozenset((str, int, float, bool, type(None)))
"""Types that are JSON as they are (exactly these: an enum deriving from str or int is not)."""


@functools.cache
def _json_names(cls: Any) -> tuple[tuple[str, str], ...]:
    """(attribute, JSON name) for each field of the dataclass `cls`, worked out once."""
    return tuple((f.name, json_name(f)) for f in dataclasses.fields(cls))


def encode(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses become objects with the API's field names,
    datetimes ISO 8601 text, enums their values."""
    kind = type(value)
    # Plain JSON first: a request body is mostly that, and each call runs per value.
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k: encode(v) for k, v in value.items()}
    if kind is list:
        return [encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            key: encode(getattr(value, attr)) for attr, key in _json_names(cast(Hashable, kind))
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: encode(v) for k, v in value.items()}
    return value
