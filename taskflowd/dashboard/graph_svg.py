"""A workflow's graph laid out for an SVG drawing, left to right (no I/O).

Each step goes in the column of its longest path from a root (`graph.layers`); within a
column, steps are ordered by a few sweeps of the barycentre of their upstream (then
downstream) neighbours, which untangles most edge crossings of ordinary workflows.
Edges are cubic curves from a box's right side to the next box's left side; the
template draws them with an arrowhead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from taskflowd.workflows.graph import Graph, layers

BOX_W = 176
BOX_H = 52
COLUMN_GAP = 72
ROW_GAP = 22
MARGIN = 12
_SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Box:
    key: str
    handler: str
    trigger: str
    x: float
    y: float
    status: str


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    path: str
    status: str
    """The source step's status: an edge is drawn as the state its upstream end left."""


@dataclass(frozen=True, slots=True)
class Drawing:
    width: float
    height: float
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    box_w: int = BOX_W
    box_h: int = BOX_H


def _mean(values: list[float], fallback: float) -> float:
    return sum(values) / len(values) if values else fallback


def _columns(graph: Graph) -> list[list[str]]:
    depth = layers(graph)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in graph.steps:
        columns[depth[step.key]].append(step.key)
    upstream = {s.key: s.depends_on for s in graph.steps}
    for sweep in range(_SWEEPS):
        forward = sweep % 2 == 0
        order = range(1, len(columns)) if forward else range(len(columns) - 2, -1, -1)
        for i in order:
            rank = {k: n for n, k in enumerate(columns[i - 1 if forward else i + 1])}
            neighbours = upstream if forward else graph.downstream
            here = {k: n for n, k in enumerate(columns[i])}
            columns[i].sort(
                key=lambda k: _mean([rank[n] for n in neighbours[k] if n in rank], here[k])
            )
    return columns


def draw(graph: Graph, statuses: Mapping[str, str]) -> Drawing:
    """Boxes and edges of `graph`, each coloured by `statuses` (step key → status; a
    step missing from it has no status, e.g. when no run is selected)."""
    columns = _columns(graph)
    tallest = max((len(c) for c in columns), default=0)
    full_h = tallest * BOX_H + max(0, tallest - 1) * ROW_GAP
    place: dict[str, tuple[float, float]] = {}
    for i, column in enumerate(columns):
        column_h = len(column) * BOX_H + max(0, len(column) - 1) * ROW_GAP
        top = MARGIN + (full_h - column_h) / 2
        for j, key in enumerate(column):
            place[key] = (MARGIN + i * (BOX_W + COLUMN_GAP), top + j * (BOX_H + ROW_GAP))
    boxes = tuple(
        Box(
            key=s.key,
            handler=s.handler,
            trigger=s.trigger.value,
            x=place[s.key][0],
            y=place[s.key][1],
            status=statuses.get(s.key, ""),
        )
        for s in graph.steps
    )
    edges = []
    for step in graph.steps:
        tx, ty = place[step.key]
        for dep in step.depends_on:
            sx, sy = place[dep]
            x1, y1 = sx + BOX_W, sy + BOX_H / 2
            x2, y2 = tx - 2, ty + BOX_H / 2
            bend = max(24.0, (x2 - x1) / 2)
            path = (
                f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} "
                f"{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
            )
            edges.append(Edge(dep, step.key, path, statuses.get(dep, "")))
    width = 2 * MARGIN + len(columns) * BOX_W + max(0, len(columns) - 1) * COLUMN_GAP
    return Drawing(width=width, height=2 * MARGIN + full_h, boxes=boxes, edges=tuple(edges))
