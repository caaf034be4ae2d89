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


class OrgRole(StrEnum):
    """A member's role in an organization (DESIGN §11), highest first."""

    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"
    VIEWER = "VIEWER"

    def at_least(self, other: OrgRole) -> bool:
        return _ORG_RANK[self] >= _ORG_RANK[other]


_ORG_RANK = {OrgRole.VIEWER: 0, OrgRole.MEMBER: 1, OrgRole.ADMIN: 2, OrgRole.OWNER: 3}


class Trigger(StrEnum):
    """When a step may start, given how its upstream steps ended (Airflow's names)."""

    ALL_SUCCESS = "ALL_SUCCESS"
    ALL_DONE = "ALL_DONE"
    ONE_SUCCESS = "ONE_SUCCESS"
    ONE_FAILED = "ONE_FAILED"
    NONE_FAILED = "NONE_FAILED"


class WorkflowStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
