"""Trigger rules, conditions, skip propagation, run status and retry selection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskflowd.domain.enums import RunStatus, Trigger
from taskflowd.workflows.graph import StepSpec, build
from taskflowd.workflows.rules import (
    Decision,
    SkipCause,
    StepState,
    StepView,
    advance,
    condition_holds,
    retry_set,
    run_status,
    trigger_met,
)

OK = StepView(StepState.SUCCEEDED, {"n": 1})
FAIL = StepView(StepState.FAILED)
GONE = StepView(StepState.CANCELLED)
SKIP = StepView(StepState.SKIPPED, cause=SkipCause.CONDITION)
SKIP_FAIL = StepView(StepState.SKIPPED, cause=SkipCause.FAILURE)
BUSY = StepView(StepState.QUEUED)

R = SkipCause


@pytest.mark.parametrize(
    ("trigger", "upstream", "expected"),
    [
        (Trigger.ALL_SUCCESS, [OK, OK], None),
        (Trigger.ALL_SUCCESS, [OK, FAIL], R.FAILURE),
        (Trigger.ALL_SUCCESS, [OK, SKIP], R.TRIGGER),
        (Trigger.ALL_SUCCESS, [SKIP, SKIP_FAIL], R.FAILURE),
        (Trigger.ALL_SUCCESS, [GONE], R.FAILURE),
        (Trigger.ALL_DONE, [FAIL, SKIP, GONE], None),
        (Trigger.ONE_SUCCESS, [FAIL, OK], None),
        (Trigger.ONE_SUCCESS, [FAIL, SKIP], R.FAILURE),
        (Trigger.ONE_SUCCESS, [SKIP, SKIP], R.TRIGGER),
        (Trigger.ONE_FAILED, [OK, FAIL], None),
        (Trigger.ONE_FAILED, [OK, SKIP_FAIL], None),
        (Trigger.ONE_FAILED, [OK, SKIP], R.TRIGGER),
        (Trigger.NONE_FAILED, [OK, SKIP], None),
        (Trigger.NONE_FAILED, [OK, FAIL], R.FAILURE),
        (Trigger.NONE_FAILED, [SKIP_FAIL], R.FAILURE),
    ],
)
def test_trigger_rules(trigger: Trigger, upstream: list[StepView], expected: R | None) -> None:
    assert trigger_met(trigger, upstream) is expected


VIEWS = {
    "a": StepView(StepState.SUCCEEDED, {"status": "ok", "count": 3, "items": [{"id": 7}]}),
    "f": FAIL,
}


@pytest.mark.parametrize(
    ("cond", "holds"),
    [
        ({"step": "a", "path": "result.status", "op": "eq", "value": "ok"}, True),
        ({"step": "a", "path": "result.status", "op": "ne", "value": "ok"}, False),
        ({"step": "a", "path": "result.missing", "op": "ne", "value": "ok"}, True),
        ({"step": "a", "path": "result.status", "op": "in", "value": ["ok", "x"]}, True),
        ({"step": "a", "path": "result.count", "op": "gt", "value": 2}, True),
        ({"step": "a", "path": "result.count", "op": "lt", "value": 2}, False),
        ({"step": "a", "path": "result.count", "op": "gt", "value": "2"}, False),
        ({"step": "a", "path": "result.items.0.id", "op": "eq", "value": 7}, True),
        ({"step": "a", "path": "result.items.5.id", "op": "exists"}, False),
        ({"step": "a", "path": "result.status", "op": "exists"}, True),
        ({"step": "a", "path": "result.nope", "op": "exists", "value": False}, True),
        ({"step": "f", "path": "status", "op": "eq", "value": "FAILED"}, True),
        ({"step": "f", "path": "result.x", "op": "eq", "value": None}, False),
        (
            {
                "all": [
                    {"step": "a", "path": "status", "op": "eq", "value": "SUCCEEDED"},
                    {"step": "f", "path": "status", "op": "eq", "value": "FAILED"},
                ]
            },
            True,
        ),
        (
            {
                "any": [
                    {"step": "a", "path": "result.count", "op": "lt", "value": 0},
                    {"step": "f", "path": "status", "op": "eq", "value": "SUCCEEDED"},
                ]
            },
            False,
        ),
    ],
)
def test_conditions(cond: dict[str, Any], holds: bool) -> None:
    assert condition_holds(cond, VIEWS) is holds


def diamond(trigger: Trigger = Trigger.ALL_SUCCESS, when: Any = None) -> Any:
    return build(
        [
            StepSpec("a"),
            StepSpec("b", depends_on=("a",)),
            StepSpec("c", depends_on=("a",), when=when),
            StepSpec("d", depends_on=("b", "c"), trigger=trigger),
        ]
    )


def test_a_run_starts_with_its_roots() -> None:
    assert advance(diamond(), {}) == [Decision("a")]


def test_the_last_upstream_decides() -> None:
    graph = diamond()
    assert advance(graph, {"a": OK}) == [Decision("b"), Decision("c")]
    assert advance(graph, {"a": OK, "b": OK, "c": BUSY}) == []
    assert advance(graph, {"a": OK, "b": OK, "c": OK}) == [Decision("d")]


def test_failure_skips_propagate_in_one_pass() -> None:
    graph = build(
        [
            StepSpec("a"),
            StepSpec("b", depends_on=("a",)),
            StepSpec("c", depends_on=("b",)),
            StepSpec("alert", depends_on=("c",), trigger=Trigger.ONE_FAILED),
            StepSpec("always", depends_on=("c",), trigger=Trigger.ALL_DONE),
        ]
    )
    assert advance(graph, {"a": FAIL}) == [
        Decision("b", R.FAILURE),
        Decision("c", R.FAILURE),
        Decision("alert"),
        Decision("always"),
    ]


def test_condition_false_skips_and_none_failed_runs_past_it() -> None:
    when = {"step": "a", "path": "result.n", "op": "gt", "value": 5}
    graph = diamond(Trigger.NONE_FAILED, when)
    decided = advance(graph, {"a": OK, "b": OK})
    assert decided == [Decision("c", R.CONDITION), Decision("d")]
    decided = advance(diamond(Trigger.ALL_SUCCESS, when), {"a": OK, "b": OK})
    assert decided == [Decision("c", R.CONDITION), Decision("d", R.TRIGGER)]


def test_run_status() -> None:
    graph = diamond()
    assert run_status(graph, {"a": OK}, cancelled=False) is RunStatus.RUNNING
    done = {"a": OK, "b": OK, "c": SKIP, "d": SKIP}
    assert run_status(graph, done, cancelled=False) is RunStatus.SUCCEEDED
    assert run_status(graph, {**done, "b": FAIL}, cancelled=False) is RunStatus.FAILED
    assert run_status(graph, {**done, "b": GONE}, cancelled=True) is RunStatus.CANCELLED
    assert run_status(graph, {**done, "d": BUSY}, cancelled=True) is RunStatus.RUNNING
    assert run_status(graph, {"a": GONE}, cancelled=True) is RunStatus.CANCELLED


def test_retry_reruns_failed_and_failure_skips_only() -> None:
    graph = diamond()
    views = {"a": OK, "b": FAIL, "c": SKIP, "d": SKIP_FAIL}
    assert retry_set(graph, views) == {"b", "d"}
    undecided = {k: v for k, v in views.items() if k not in {"b", "d"}}
    assert advance(graph, undecided) == [Decision("b")]


@settings(deadline=None)
@given(st.lists(st.sampled_from([OK, FAIL, GONE, SKIP, SKIP_FAIL]), min_size=1, max_size=6))
def test_rules_agree_with_their_definitions(upstream: list[StepView]) -> None:
    states = [u.state for u in upstream]
    any_fail = any(u.failed for u in upstream)
    expect = {
        Trigger.ALL_SUCCESS: all(s is StepState.SUCCEEDED for s in states),
        Trigger.ALL_DONE: True,
        Trigger.ONE_SUCCESS: StepState.SUCCEEDED in states,
        Trigger.ONE_FAILED: any_fail,
        Trigger.NONE_FAILED: not any_fail,
    }
    for trigger, runs in expect.items():
        cause = trigger_met(trigger, upstream)
        assert (cause is None) is runs
        if cause is not None and trigger is not Trigger.ONE_FAILED:
            assert (cause is R.FAILURE) is any_fail


@settings(deadline=None)
@given(st.data())
def test_every_step_gets_decided_once(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=12))
    steps = []
    for i in range(n):
        deps = data.draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        trigger = data.draw(st.sampled_from(list(Trigger)))
        steps.append(StepSpec(f"s{i}", depends_on=tuple(f"s{d}" for d in deps), trigger=trigger))
    graph = build(steps)
    views: dict[str, StepView] = {}
    seen: set[str] = set()
    while True:
        decided = advance(graph, views)
        if not decided:
            break
        for d in decided:
            assert d.key not in seen
            seen.add(d.key)
            if d.skip is not None:
                views[d.key] = StepView(StepState.SKIPPED, cause=d.skip)
            else:
                views[d.key] = data.draw(st.sampled_from([OK, FAIL]))
    assert seen == {s.key for s in steps}
    assert run_status(graph, views, cancelled=False) is not RunStatus.RUNNING
