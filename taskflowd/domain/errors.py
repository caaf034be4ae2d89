"""Errors raised by the domain and the services; the API maps each to a status code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad input field: `field` is a dotted path in the API's camelCase names."""

    field: str
    message: str


class TaskflowError(Exception):
    """Base of every error taskflowd raises on purpose."""

    code = "error"


class ValidationFailed(TaskflowError):
    """Input broke one or more rules; `errors` names each bad field."""

    code = "validation_failed"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


class NotFound(TaskflowError):
    """The record does not exist, was deleted, or belongs to someone else."""

    code = "not_found"


class Conflict(TaskflowError):
    """The request clashes with the record's current state (e.g. a used email)."""

    code = "conflict"


class Forbidden(TaskflowError):
    """The caller's role does not allow this action."""

    code = "forbidden"
