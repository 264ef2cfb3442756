"""A team's compiled graph drawn as inline SVG, on the server.

The viewer must work with no internet (no CDN) and no front-end build, and Mermaid's
renderer is megabytes of JavaScript; a team graph is a handful of nodes, so a small
layered layout is enough: each node sits on the layer of its longest path from
``__start__`` (back edges, the loops of gvr or debate, are left out of that), layers
are rows, edges are arrows, conditional edges dashed; loops curve round the right,
edges that skip a layer round the left.
Every label is XML-escaped; the SVG carries no script and no style attribute (the
pages' CSP forbids inline style), only presentation attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

__all__ = ["graph_svg"]

CHAR_W = 7.5
BOX_H = 34
PAD_X = 14
GAP_X = 28
GAP_Y = 56
MARGIN = 24
LOOP_ROOM = 60


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    w: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


def _label(node: str) -> str:
    return {"__start__": "start", "__end__": "end"}.get(node, node)


def _layers(nodes: list[str], edges: list[tuple[str, str, bool]]) -> dict[str, int]:
    """Longest-path layer of each node, over the graph without its back edges."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for source, target, _ in edges:
        out.setdefault(source, []).append(target)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1: on the DFS stack, 2: done

    def visit(node: str) -> None:
        state[node] = 1
        for target in out.get(node, []):
            if state.get(target) == 1:
                back.add((node, target))
            elif target not in state:
                visit(target)
        state[node] = 2

    for root in ["__start__", *nodes]:
        if root in out and root not in state:
            visit(root)
    layer = dict.fromkeys(nodes, 0)
    for _ in nodes:  # Bellman-Ford style relaxation: the DAG is tiny
        for source, target, _cond in edges:
            if (source, target) not in back and layer[target] < layer[source] + 1:
                layer[target] = layer[source] + 1
    others = [v for k, v in layer.items() if k != "__end__"]
    if "__end__" in layer and others:  # the end goes below everything
        layer["__end__"] = max(others) + 1
    return layer


def graph_svg(graph: Any) -> str:
    """SVG markup of a LangGraph drawable graph (``compiled.get_graph()``)."""
    nodes = [str(n) for n in graph.nodes]
    edges = [(str(e.source), str(e.target), bool(e.conditional)) for e in graph.edges]
    layer = _layers(nodes, edges)
    rows: dict[int, list[str]] = {}
    for node in nodes:
        rows.setdefault(layer[node], []).append(node)
    widths = {n: len(_label(n)) * CHAR_W + 2 * PAD_X for n in nodes}
    row_w = {r: sum(widths[n] for n in ns) + GAP_X * (len(ns) - 1) for r, ns in rows.items()}
    inner = max(row_w.values(), default=0)
    boxes: dict[str, _Box] = {}
    for r, ns in rows.items():
        x = MARGIN + LOOP_ROOM + (inner - row_w[r]) / 2
        for node in ns:
            boxes[node] = _Box(x, MARGIN + r * (BOX_H + GAP_Y), widths[node])
            x += widths[node] + GAP_X
    width = inner + 2 * MARGIN + 2 * LOOP_ROOM
    height = MARGIN * 2 + (max(rows, default=0) + 1) * (BOX_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="team-graph" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'font-family="sans-serif" font-size="13">',
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" "
        "markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">"
        "<path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>",
    ]
    right = inner + MARGIN + LOOP_ROOM
    for source, target, conditional in edges:
        a, b = boxes[source], boxes[target]
        dash = ' stroke-dasharray="5 4"' if conditional else ""
        kind = "conditional" if conditional else "direct"
        common = (f'class="edge {kind}" fill="none" stroke="#555" stroke-width="1.4"{dash} '
                  f'marker-end="url(#arrow)" data-source={quoteattr(source)} '
                  f'data-target={quoteattr(target)}')
        if layer[target] == layer[source] + 1:
            path = f"M {a.cx:.1f} {a.y + BOX_H:.1f} L {b.cx:.1f} {b.y:.1f}"
        elif layer[target] > layer[source]:  # skips layers: round the left-hand side
            bend = MARGIN + LOOP_ROOM * 0.3
            ya, yb = a.y + BOX_H / 2, b.y + BOX_H / 2
            path = (f"M {a.x:.1f} {ya:.1f} C {bend:.1f} {ya:.1f} {bend:.1f} {yb:.1f} "
                    f"{b.x:.1f} {yb:.1f}")
        else:  # a loop back up: round the right-hand side
            bend = right + LOOP_ROOM * 0.7
            ya, yb = a.y + BOX_H / 2, b.y + BOX_H / 2
            path = (f"M {a.x + a.w:.1f} {ya:.1f} C {bend:.1f} {ya:.1f} {bend:.1f} {yb:.1f} "
                    f"{b.x + b.w:.1f} {yb:.1f}")
        parts.append(f'<path d="{path}" {common}/>')
    for node in nodes:
        box = boxes[node]
        terminal = node in ("__start__", "__end__")
        fill = "#eef2f7" if terminal else "#ffffff"
        rx = BOX_H / 2 if terminal else 6
        parts.append(
            f'<g class="node" data-node={quoteattr(node)}>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{BOX_H}" '
            f'rx="{rx:.0f}" fill="{fill}" stroke="#334" stroke-width="1.2"/>'
            f'<text x="{box.cx:.1f}" y="{box.y + BOX_H / 2 + 4.5:.1f}" text-anchor="middle" '
            f'fill="#123">{escape(_label(node))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
