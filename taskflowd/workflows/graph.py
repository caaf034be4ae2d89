"""A workflow's steps as a validated DAG: unique keys, known dependencies, no cycle."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskflowd.domain.entities import JSON
from taskflowd.domain.enums import Trigger
from taskflowd.domain.errors import FieldError, ValidationFailed

MAX_STEPS = 200
CONDITION_OPS = frozenset({"eq", "ne", "in", "exists", "gt", "lt"})
MAX_CONDITION_DEPTH = 8


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step: a job (handler, payload, limits) and when it runs."""

    key: str
    handler: str = "echo"
    payload: JSON = None
    timeout_ms: int | None = None
    max_retries: int = 0
    backoff_ms: int = 1000
    priority: int = 0
    depends_on: tuple[str, ...] = ()
    trigger: Trigger = Trigger.ALL_SUCCESS
    when: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Graph:
    """Validated steps in a topological order, with each step's upstream and downstream."""

    steps: tuple[StepSpec, ...]
    by_key: Mapping[str, StepSpec] = field(default_factory=dict)
    downstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def roots(self) -> list[str]:
        return [s.key for s in self.steps if not s.depends_on]


def _condition_errors(cond: Any, where: str, upstream: set[str], depth: int) -> list[FieldError]:
    if not isinstance(cond, Mapping):
        return [FieldError(where, "must be an object")]
    if depth > MAX_CONDITION_DEPTH:
        return [FieldError(where, f"nests deeper than {MAX_CONDITION_DEPTH} levels")]
    for group in ("all", "any"):
        if group in cond:
            parts = cond[group]
            if len(cond) != 1 or not isinstance(parts, list) or not parts:
                return [FieldError(where, f"'{group}' takes a non-empty list, alone")]
            found: list[FieldError] = []
            for i, part in enumerate(parts):
                found += _condition_errors(part, f"{where}.{group}[{i}]", upstream, depth + 1)
            return found
    return _leaf_errors(cond, where, upstream)


def _leaf_errors(cond: Mapping[str, Any], where: str, upstream: set[str]) -> list[FieldError]:
    found = []
    step, path, op = cond.get("step"), cond.get("path"), cond.get("op")
    if not isinstance(step, str) or step not in upstream:
        found.append(FieldError(f"{where}.step", "must name a step listed in dependsOn"))
    if not isinstance(path, str):
        found.append(FieldError(f"{where}.path", "must be a dotted path such as result.status"))
    if op not in CONDITION_OPS:
        found.append(
            FieldError(f"{where}.op", f"must be one of {', '.join(sorted(CONDITION_OPS))}")
        )
    elif op != "exists" and "value" not in cond:
        found.append(FieldError(f"{where}.value", f"is required with op {op}"))
    elif op == "in" and not isinstance(cond.get("value"), list):
        found.append(FieldError(f"{where}.value", "must be a list with op in"))
    unknown = set(cond) - {"step", "path", "op", "value"}
    if unknown:
        found.append(FieldError(where, f"unknown fields: {', '.join(sorted(unknown))}"))
    return found


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle of `edges` (step → its upstream steps) as `[a, b, …, a]`, or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for start in edges:
        if colour[start] != white:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                colour[node] = grey
                path.append(node)
            nexts = [n for n in edges[node] if n in colour]
            if i < len(nexts):
                stack.append((node, i + 1))
                nxt = nexts[i]
                if colour[nxt] == grey:
                    return [*path[path.index(nxt) :], nxt]
                if colour[nxt] == white:
                    stack.append((nxt, 0))
            else:
                colour[node] = black
                path.pop()
    return None


def build(
    steps: Sequence[StepSpec], handler_known: Callable[[str], bool] = lambda _: True
) -> Graph:
    """Validate `steps`; raises ValidationFailed naming every bad field (a cycle is
    reported once, as `a → b → a`)."""
    errors: list[FieldError] = []
    if not steps:
        errors.append(FieldError("steps", "needs at least one step"))
    if len(steps) > MAX_STEPS:
        errors.append(FieldError("steps", f"at most {MAX_STEPS} steps"))
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step.key in seen:
            errors.append(FieldError(f"steps[{i}].key", f"duplicate step key {step.key!r}"))
        seen.add(step.key)
        if not handler_known(step.handler):
            errors.append(FieldError(f"steps[{i}].handler", f"unknown handler {step.handler!r}"))
    errors += _dependency_errors(steps, seen)
    if errors:
        raise ValidationFailed(errors)
    edges = {s.key: list(s.depends_on) for s in steps}
    cycle = find_cycle(edges)
    if cycle is not None:
        raise ValidationFailed([FieldError("steps", "cycle: " + " → ".join(cycle))])
    return _ordered(steps)


def _dependency_errors(steps: Sequence[StepSpec], seen: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, step in enumerate(steps):
        for j, dep in enumerate(step.depends_on):
            if dep not in seen:
                errors.append(FieldError(f"steps[{i}].dependsOn[{j}]", f"unknown step {dep!r}"))
            elif dep == step.key:
                errors.append(
                    FieldError(f"steps[{i}].dependsOn[{j}]", "a step cannot depend on itself")
                )
        if len(set(step.depends_on)) != len(step.depends_on):
            errors.append(FieldError(f"steps[{i}].dependsOn", "lists a step twice"))
        if step.when is not None:
            errors += _condition_errors(step.when, f"steps[{i}].when", set(step.depends_on), 0)
    return errors


def _ordered(steps: Sequence[StepSpec]) -> Graph:
    by_key = {s.key: s for s in steps}
    downstream: dict[str, list[str]] = {s.key: [] for s in steps}
    for s in steps:
        for dep in s.depends_on:
            downstream[dep].append(s.key)
    waiting = {s.key: len(s.depends_on) for s in steps}
    ready = [s.key for s in steps if not s.depends_on]
    order: list[str] = []
    while ready:
        key = ready.pop(0)
        order.append(key)
        for child in downstream[key]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return Graph(
        steps=tuple(by_key[k] for k in order),
        by_key=by_key,
        downstream={k: tuple(v) for k, v in downstream.items()},
    )


def layers(graph: Graph) -> dict[str, int]:
    """Each step's column when drawn left to right: one more than its deepest upstream."""
    depth: dict[str, int] = {}
    for step in graph.steps:
        depth[step.key] = 1 + max((depth[d] for d in step.depends_on), default=-1)
    return depth
