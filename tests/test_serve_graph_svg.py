"""The server-side SVG of a team's graph: one box per node, every edge an arrow,
conditional edges dashed, labels escaped (no JS renderer, no CDN)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from concilium import load_team
from concilium.serve.graph_svg import graph_svg

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "teams"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("file", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_team_draws_one_box_per_node(file: str) -> None:
    graph = load_team(EXAMPLES / file).compile().get_graph()
    root = ET.fromstring(graph_svg(graph))  # well-formed XML
    boxes = root.findall(f"{SVG}g[@class='node']")
    assert sorted(b.get("data-node") or "" for b in boxes) == sorted(graph.nodes)
    edges = root.findall(f"{SVG}path")
    assert len(edges) == len(graph.edges)
    dashed = [e for e in edges if e.get("stroke-dasharray")]
    assert len(dashed) == sum(1 for e in graph.edges if e.conditional)
    for box in boxes:  # inside the canvas
        rect = box.find(f"{SVG}rect")
        assert rect is not None
        assert float(rect.get("x", -1)) >= 0 and float(rect.get("y", -1)) >= 0
        assert float(rect.get("x", 0)) + float(rect.get("width", 0)) <= float(root.get("width", 0))


def test_gvr_layers_follow_the_longest_path() -> None:
    svg = graph_svg(load_team(EXAMPLES / "gvr.yaml").compile().get_graph())
    root = ET.fromstring(svg)
    y = {g.get("data-node"): float(g.find(f"{SVG}rect").get("y"))  # type: ignore[union-attr]
         for g in root.findall(f"{SVG}g[@class='node']")}
    assert y["__start__"] < y["generator"] < y["verifier"] < y["refiner"] < y["__end__"]


def test_labels_are_escaped() -> None:
    def edge(source: str, target: str) -> SimpleNamespace:
        return SimpleNamespace(source=source, target=target, conditional=False)

    graph = SimpleNamespace(nodes={"__start__": None, "<b>&x": None, "__end__": None},
                            edges=[edge("__start__", "<b>&x"), edge("<b>&x", "__end__")])
    svg = graph_svg(graph)
    assert "<b>" not in svg and "&lt;b&gt;&amp;x" in svg
    assert not re.search(r"<script|style=", svg)
    ET.fromstring(svg)
