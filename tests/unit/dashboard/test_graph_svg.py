"""The workflow graph's layout: columns by longest path from a root, no two boxes on top
of each other, edges from a box's right side to the next one's left side."""

from __future__ import annotations

from taskflowd.dashboard.graph_svg import BOX_H, BOX_W, draw
from taskflowd.workflows.graph import StepSpec, build


def step(key: str, *deps: str) -> StepSpec:
    return StepSpec(key, depends_on=deps)


def test_columns_follow_the_longest_path_and_boxes_do_not_overlap() -> None:
    graph = build([step("a"), step("b", "a"), step("c", "a", "b"), step("d"), step("e", "d")])
    drawing = draw(graph, {"a": "COMPLETED", "b": "FAILED"})
    x = {b.key: b.x for b in drawing.boxes}
    assert x["a"] == x["d"] < x["b"] == x["e"] < x["c"]
    spots = {(b.x, b.y) for b in drawing.boxes}
    assert len(spots) == len(drawing.boxes)
    for box in drawing.boxes:
        assert box.x >= 0 and box.x + BOX_W <= drawing.width
        assert box.y >= 0 and box.y + BOX_H <= drawing.height
    status = {b.key: b.status for b in drawing.boxes}
    assert status == {"a": "COMPLETED", "b": "FAILED", "c": "", "d": "", "e": ""}
    edges = {(e.source, e.target): e for e in drawing.edges}
    assert set(edges) == {("a", "b"), ("a", "c"), ("b", "c"), ("d", "e")}
    assert edges["b", "c"].status == "FAILED"
    assert edges["a", "b"].path.startswith(f"M{x['a'] + BOX_W:.1f},")


def test_children_line_up_with_their_parents() -> None:
    # Each child sits beside its own parent, so the two edges do not cross.
    graph = build([step("p1"), step("p2"), step("c2", "p2"), step("c1", "p1")])
    y = {b.key: b.y for b in draw(graph, {}).boxes}
    assert (y["p1"] < y["p2"]) == (y["c1"] < y["c2"])
