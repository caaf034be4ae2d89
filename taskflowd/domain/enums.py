"""The closed vocabularies of the data model; values are what the API shows."""

from __future__ import annotations

from enum import StrEnum


class TaskType(StrEnum):
    ONE_TIME = "ONE_TIME"
    DELAYED = "DELAYED"
    RECURRING = "RECURRING"
    ON_DEMAND = "ON_DEMAND"
    """Never runs by itself: only runs requested through the API start it."""


class TaskStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


class MisfirePolicy(StrEnum):
    RUN_ONCE = "RUN_ONCE"
    SKIP = "SKIP"
    RUN_ALL = "RUN_ALL"


class Role(StrEnum):
    ADMIN = "ADMIN"
    USER = "USER"
