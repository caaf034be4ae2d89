"""Payload parsing shared by the built-in handlers: pydantic errors become FieldErrors."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError
from taskflowd.handlers.base import JobError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound="BaseModel")

ROOT = "payload"


def field_path(loc: tuple[int | str, ...], root: str = ROOT) -> str:
    """Join a pydantic error location onto `root` as the API writes paths:
    `payload.headers.x`, list items in brackets (`payload.argv[3]`)."""
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def field_errors(exc: ValidationError, root: str = ROOT) -> list[FieldError]:
    """One FieldError per pydantic error, with the payload's own (camelCase) field names."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "value_error" and "error" in err.get("ctx", {}):
            # Our own validators' messages, without pydantic's "Value error, " prefix.
            message = str(err["ctx"]["error"])
        errors.append(FieldError(field_path(err["loc"], root), message))
    return errors


def check(model: type[BaseModel], payload: JSON) -> list[FieldError]:
    """Validate `payload` against `model`; never raises for any JSON input."""
    from pydantic import ValidationError  # loaded with the first payload model (issue 12)

    if not isinstance(payload, dict):
        return [FieldError(ROOT, "must be a JSON object")]
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        return field_errors(exc)
    return []


def parse(model: type[ModelT], payload: JSON) -> ModelT:
    """Parse a payload at run time; a bad one fails the job for good (it cannot heal)."""
    from pydantic import ValidationError

    if not isinstance(payload, dict):
        raise JobError(
            "payload must be a JSON object", error_type="invalid_payload", retryable=False
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        detail = "; ".join(f"{e.field}: {e.message}" for e in field_errors(exc))
        raise JobError(
            f"invalid payload: {detail}", error_type="invalid_payload", retryable=False
        ) from None
