"""Workflows and their runs as records, and the steps' JSON form (the API's camelCase)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskflowd.domain.entities import DEFAULT_ORG_ID, JSON
from taskflowd.domain.enums import MisfirePolicy, RunStatus, Trigger, WorkflowStatus
from taskflowd.workflows.graph import StepSpec


@dataclass(frozen=True, slots=True)
class Workflow:
    """A DAG of steps; `task_id` is the hidden task whose jobs its step executions are."""

    id: str
    name: str
    description: str
    steps: tuple[StepSpec, ...]
    status: WorkflowStatus
    task_id: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    cron_expression: str | None = None
    timezone: str = "UTC"
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    next_run_at: datetime | None = None
    org_id: str = DEFAULT_ORG_ID


@dataclass(frozen=True, slots=True)
class StepRun:
    """One step as a run shows it: an execution status, SKIPPED, or PENDING while its
    upstream steps are still running."""

    key: str
    status: str
    execution_id: str | None = None
    attempts: int = 0
    result: JSON = None
    error: JSON = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    skip_cause: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    id: str
    workflow_id: str
    owner_id: str
    status: RunStatus
    created_at: datetime
    org_id: str = DEFAULT_ORG_ID
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: tuple[StepRun, ...] = ()
    graph: tuple[StepSpec, ...] = ()
    """The steps the run started with (a later change of the workflow does not alter it);
    filled when one run is read."""


def step_to_json(step: StepSpec) -> dict[str, Any]:
    return {
        "key": step.key,
        "handler": step.handler,
        "payload": step.payload,
        "timeout": step.timeout_ms,
        "maxRetries": step.max_retries,
        "backoffMs": step.backoff_ms,
        "priority": step.priority,
        "dependsOn": list(step.depends_on),
        "trigger": step.trigger.value,
        "when": step.when,
    }


def step_from_json(doc: Mapping[str, Any]) -> StepSpec:
    """A step from its stored (or already schema-checked) JSON form."""
    return StepSpec(
        key=doc["key"],
        handler=doc.get("handler", "echo"),
        payload=doc.get("payload"),
        timeout_ms=doc.get("timeout"),
        max_retries=doc.get("maxRetries", 0),
        backoff_ms=doc.get("backoffMs", 1000),
        priority=doc.get("priority", 0),
        depends_on=tuple(doc.get("dependsOn") or ()),
        trigger=Trigger(doc.get("trigger") or Trigger.ALL_SUCCESS),
        when=doc.get("when"),
    )


def steps_to_json(steps: Sequence[StepSpec]) -> list[dict[str, Any]]:
    return [step_to_json(s) for s in steps]


def steps_from_json(docs: Any) -> tuple[StepSpec, ...]:
    return tuple(step_from_json(d) for d in docs)
