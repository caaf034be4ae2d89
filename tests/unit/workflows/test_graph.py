"""Validation of a workflow's steps: keys, dependencies, conditions, limits, cycles."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskflowd.domain.errors import ValidationFailed
from taskflowd.workflows.graph import MAX_STEPS, StepSpec, build, find_cycle, layers


def fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {e.field: e.message for e in exc.value.errors}


def test_diamond_is_ordered_upstream_first() -> None:
    graph = build(
        [
            StepSpec("d", depends_on=("b", "c")),
            StepSpec("b", depends_on=("a",)),
            StepSpec("c", depends_on=("a",)),
            StepSpec("a"),
        ]
    )
    order = [s.key for s in graph.steps]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert graph.roots() == ["a"]
    assert set(graph.downstream["a"]) == {"b", "c"}
    assert layers(graph) == {"a": 0, "b": 1, "c": 1, "d": 2}


def test_cycle_is_named() -> None:
    with pytest.raises(ValidationFailed) as exc:
        build([StepSpec("a", depends_on=("b",)), StepSpec("b", depends_on=("a",))])
    message = fields(exc)["steps"]
    assert message in ("cycle: a → b → a", "cycle: b → a → b")


def test_longer_cycle_behind_a_root() -> None:
    with pytest.raises(ValidationFailed) as exc:
        build(
            [
                StepSpec("root"),
                StepSpec("x", depends_on=("root", "z")),
                StepSpec("y", depends_on=("x",)),
                StepSpec("z", depends_on=("y",)),
            ]
        )
    cycle = fields(exc)["steps"].removeprefix("cycle: ").split(" → ")
    assert cycle[0] == cycle[-1] and set(cycle) == {"x", "y", "z"}


def test_self_unknown_and_duplicate() -> None:
    with pytest.raises(ValidationFailed) as exc:
        build(
            [
                StepSpec("a", depends_on=("a",)),
                StepSpec("a"),
                StepSpec("b", depends_on=("nope", "a", "a")),
            ]
        )
    found = fields(exc)
    assert "duplicate" in found["steps[1].key"]
    assert "itself" in found["steps[0].dependsOn[0]"]
    assert "unknown step" in found["steps[2].dependsOn[0]"]
    assert "twice" in found["steps[2].dependsOn"]


def test_limits_and_handlers() -> None:
    with pytest.raises(ValidationFailed) as exc:
        build([StepSpec(f"s{i}") for i in range(MAX_STEPS + 1)])
    assert "at most" in fields(exc)["steps"]
    with pytest.raises(ValidationFailed) as exc:
        build([], lambda _: True)
    assert "at least one" in fields(exc)["steps"]
    with pytest.raises(ValidationFailed) as exc:
        build([StepSpec("a", handler="nope")], lambda h: h == "echo")
    assert "unknown handler" in fields(exc)["steps[0].handler"]
    assert len(build([StepSpec(f"s{i}") for i in range(MAX_STEPS)]).steps) == MAX_STEPS


@pytest.mark.parametrize(
    ("when", "field"),
    [
        ({"step": "x", "path": "result", "op": "eq", "value": 1}, "steps[1].when.step"),
        ({"step": "a", "path": "result", "op": "matches", "value": 1}, "steps[1].when.op"),
        ({"step": "a", "path": "result", "op": "eq"}, "steps[1].when.value"),
        ({"step": "a", "path": "result", "op": "in", "value": 3}, "steps[1].when.value"),
        ({"step": "a", "path": 3, "op": "exists"}, "steps[1].when.path"),
        ({"step": "a", "path": "r", "op": "exists", "code": "x"}, "steps[1].when"),
        ({"all": []}, "steps[1].when"),
        ({"any": [{"step": "a", "path": "r", "op": "lt"}]}, "steps[1].when.any[0].value"),
        ("not an object", "steps[1].when"),
    ],
)
def test_bad_conditions(when: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        build([StepSpec("a"), StepSpec("b", depends_on=("a",), when=when)])  # type: ignore[arg-type]
    assert field in fields(exc)


@settings(deadline=None)
@given(st.integers(min_value=2, max_value=30), st.data())
def test_random_dags_validate_and_order(n: int, data: st.DataObject) -> None:
    steps = []
    for i in range(n):
        deps = (
            data.draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3))
            if i
            else set()
        )
        steps.append(StepSpec(f"s{i}", depends_on=tuple(f"s{d}" for d in sorted(deps))))
    shuffled = data.draw(st.permutations(steps))
    graph = build(shuffled)
    position = {s.key: i for i, s in enumerate(graph.steps)}
    for step in graph.steps:
        assert all(position[d] < position[step.key] for d in step.depends_on)


@settings(deadline=None)
@given(st.integers(min_value=2, max_value=20), st.data())
def test_a_back_edge_is_always_found(n: int, data: st.DataObject) -> None:
    edges = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(n)}
    low = data.draw(st.integers(min_value=0, max_value=n - 2))
    high = data.draw(st.integers(min_value=low + 1, max_value=n - 1))
    edges[f"s{low}"].append(f"s{high}")
    cycle = find_cycle(edges)
    assert cycle is not None and cycle[0] == cycle[-1]
    for node, upstream in itertools.pairwise(cycle):
        assert upstream in edges[node]
