"""What a workflow run does next: trigger rules, `when` conditions, skip propagation, the
run's status and what a retry re-runs. Pure functions over a snapshot of the run.

A step is decided once all its upstream steps are done (the end of the last one decides
it): it either runs or ends SKIPPED with a cause. A skip caused by a failure upstream is
what a retry of the run re-runs, together with the failed steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from taskflowd.domain.entities import JSON
from taskflowd.domain.enums import RunStatus, Trigger
from taskflowd.workflows.graph import Graph, StepSpec


class StepState(StrEnum):
    """How a step stands in a run; the final ones are SUCCEEDED, FAILED, CANCELLED and
    SKIPPED, the rest are not done."""

    UNDECIDED = "UNDECIDED"
    QUEUED = "QUEUED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


class SkipCause(StrEnum):
    FAILURE = "FAILURE"
    """An upstream step failed (or was skipped because of a failure): retry re-runs it."""
    TRIGGER = "TRIGGER"
    """The trigger rule was not met for another reason (e.g. ONE_FAILED, nothing failed)."""
    CONDITION = "CONDITION"
    """The trigger was met but the `when` condition was false."""


_DONE = frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELLED, StepState.SKIPPED})


@dataclass(frozen=True, slots=True)
class StepView:
    """A step's state in a run, with its result when it succeeded."""

    state: StepState
    result: JSON = None
    cause: SkipCause | None = None

    @property
    def done(self) -> bool:
        return self.state in _DONE

    @property
    def failed(self) -> bool:
        """Counts as a failure for trigger rules and for retry."""
        return self.state in (StepState.FAILED, StepState.CANCELLED) or (
            self.state is StepState.SKIPPED and self.cause is SkipCause.FAILURE
        )


UNDECIDED = StepView(StepState.UNDECIDED)


@dataclass(frozen=True, slots=True)
class Decision:
    """Run the step (`skip` None) or end it SKIPPED for `skip`."""

    key: str
    skip: SkipCause | None = None


def trigger_met(trigger: Trigger, upstream: list[StepView]) -> SkipCause | None:
    """None when `trigger` lets the step run given its finished `upstream`, else why not."""
    succeeded = any(u.state is StepState.SUCCEEDED for u in upstream)
    failed = any(u.failed for u in upstream)
    if trigger is Trigger.ALL_DONE:
        return None
    if trigger is Trigger.ALL_SUCCESS:
        if all(u.state is StepState.SUCCEEDED for u in upstream):
            return None
    elif trigger is Trigger.ONE_SUCCESS:
        if succeeded:
            return None
    elif trigger is Trigger.ONE_FAILED:
        return None if failed else SkipCause.TRIGGER
    elif not failed:  # NONE_FAILED
        return None
    return SkipCause.FAILURE if failed else SkipCause.TRIGGER


_MISSING = object()


def _lookup(document: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        if isinstance(document, Mapping) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return _MISSING
    return document


def _compare(op: str, found: Any, value: Any) -> bool:
    if op == "exists":
        return (found is not _MISSING) is (value is not False)
    if found is _MISSING:
        return op == "ne"
    if op == "eq":
        return bool(found == value)
    if op == "ne":
        return bool(found != value)
    if op == "in":
        return isinstance(value, list) and found in value
    numbers = (int, float)
    same = isinstance(found, numbers) and isinstance(value, numbers)
    same = same or (isinstance(found, str) and isinstance(value, str))
    if not same or isinstance(found, bool) or isinstance(value, bool):
        return False
    return bool(found > value) if op == "gt" else bool(found < value)


def condition_holds(cond: Mapping[str, Any], views: Mapping[str, StepView]) -> bool:
    """Evaluate a `when` condition (data only) against the upstream steps. A path is read
    from `{"result": …, "status": …}` of the named step; a missing path is false for
    every operator but `ne`."""
    if "all" in cond:
        return all(condition_holds(c, views) for c in cond["all"])
    if "any" in cond:
        return any(condition_holds(c, views) for c in cond["any"])
    view = views.get(str(cond.get("step")), UNDECIDED)
    document = {"result": view.result, "status": view.state.value}
    op = str(cond.get("op"))
    value = cond.get("value") if op != "exists" else cond.get("value", True)
    return _compare(op, _lookup(document, str(cond.get("path", ""))), value)


def _decide_one(step: StepSpec, views: Mapping[str, StepView]) -> Decision | None:
    upstream = [views.get(d, UNDECIDED) for d in step.depends_on]
    if not all(u.done for u in upstream):
        return None
    cause = trigger_met(step.trigger, upstream)
    if cause is None and step.when is not None and not condition_holds(step.when, views):
        cause = SkipCause.CONDITION
    return Decision(step.key, cause)


def advance(graph: Graph, views: Mapping[str, StepView]) -> list[Decision]:
    """Every undecided step that can be decided now, skips propagated in topological
    order (a skipped step can decide its own downstream in the same pass)."""
    known = dict(views)
    decided: list[Decision] = []
    for step in graph.steps:
        if known.get(step.key, UNDECIDED).state is not StepState.UNDECIDED:
            continue
        decision = _decide_one(step, known)
        if decision is None:
            continue
        decided.append(decision)
        if decision.skip is None:
            known[step.key] = StepView(StepState.QUEUED)
        else:
            known[step.key] = StepView(StepState.SKIPPED, cause=decision.skip)
    return decided


def run_status(graph: Graph, views: Mapping[str, StepView], cancelled: bool) -> RunStatus:
    """RUNNING while any step is not done; then FAILED when any step failed or was
    cancelled, else SUCCEEDED. A cancelled run decides nothing more: it is RUNNING while
    a step is still queued or running, then CANCELLED."""
    states = [views.get(s.key, UNDECIDED) for s in graph.steps]
    if cancelled:
        busy = any(v.state is StepState.QUEUED for v in states)
        return RunStatus.RUNNING if busy else RunStatus.CANCELLED
    if not all(v.done for v in states):
        return RunStatus.RUNNING
    if any(v.state in (StepState.FAILED, StepState.CANCELLED) for v in states):
        return RunStatus.FAILED
    return RunStatus.SUCCEEDED


def retry_set(graph: Graph, views: Mapping[str, StepView]) -> set[str]:
    """The steps a retry re-runs: those FAILED or CANCELLED, and those SKIPPED because of
    a failure; steps that succeeded keep their results."""
    return {s.key for s in graph.steps if views.get(s.key, UNDECIDED).failed}


def downstream_of(graph: Graph, key: str) -> set[str]:
    """Every step that depends on `key`, directly or through other steps."""
    found: set[str] = set()
    frontier = list(graph.downstream.get(key, ()))
    while frontier:
        step = frontier.pop()
        if step not in found:
            found.add(step)
            frontier.extend(graph.downstream.get(step, ()))
    return found
