"""``langgraph.json`` and its graph factories, loaded the way LangGraph Server loads them
(``spec_from_file_location``, ``module.__dict__[name]``, a factory called with a config)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.pregel import Pregel

from concilium.agents.providers import scripted
from concilium.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent


def load_like_langgraph_server(spec: str) -> Any:
    """langgraph_api.graph._graph_from_spec, for a ``./path.py:variable`` spec."""
    path, variable = spec.rsplit(":", 1)
    modname = path.replace("/", "__").replace(".py", "").replace(" ", "_").lstrip(".")
    modspec = importlib.util.spec_from_file_location(modname, ROOT / path)
    assert modspec is not None and modspec.loader is not None
    module = importlib.util.module_from_spec(modspec)
    sys.modules[modname] = module
    modspec.loader.exec_module(module)
    value = module.__dict__[variable]
    assert callable(value)
    return value({"configurable": {}})  # a one-parameter factory gets the run's config


def test_langgraph_json_names_every_example_team() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    stems = sorted(p.stem for p in (ROOT / "examples" / "teams").glob("*.yaml"))
    assert sorted(config["graphs"]) == stems
    for name, spec in config["graphs"].items():
        graph = load_like_langgraph_server(spec)
        assert isinstance(graph, Pregel), name
        assert "task" in graph.get_input_jsonschema()["properties"]


@pytest.mark.parametrize("name", ["single", "gvr", "debate"])
async def test_factory_graph_runs_with_its_default_context(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCILIUM_MODEL", "scripted/lgserver")
    get_settings.cache_clear()
    spec = json.loads((ROOT / "langgraph.json").read_text())["graphs"][name]
    graph = load_like_langgraph_server(spec)
    with scripted.use("lgserver", scripted.Script(default="17 * 24 + 3 = 411\nAnswer: 411")):
        seen = [chunk async for chunk in graph.astream(
            {"task": "What is 17 * 24 + 3?"}, stream_mode=["custom", "values"],
            subgraphs=True)]
        final = await graph.ainvoke({"task": "What is 17 * 24 + 3?"})
    assert final["answer"]["value"] == "411"
    assert final["steps"] and all(s["model"] in ("scripted/lgserver", "calculator")
                                  for s in final["steps"])
    steps = [c for _ns, mode, c in seen if mode == "custom" and c.get("type") == "step"]
    assert len(steps) == len(final["steps"])  # each step streamed live
