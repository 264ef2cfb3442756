"""Graph factories for LangGraph's own tooling (``langgraph dev``, LangGraph Server).

``langgraph.json`` at the repository root names one factory per example team
(``single``, ``gvr``, ``debate``, ...). LangGraph Server imports this file, looks the
name up and calls it; what it gets is an ordinary compiled graph whose input is
``{"task": "..."}``. A team's own graph needs a :class:`RunContext` (its spec, budgets,
default model) that a LangGraph client does not send, so each factory wraps the team's
graph in a one-node graph that runs it with the team's default context: any LangGraph
client can invoke it, stream it, and see each step on the ``custom`` stream.

Example:
    >>> graph = make_graph("gvr")                    # examples/teams/gvr.yaml
    >>> await graph.ainvoke({"task": "What is 17 * 24 + 3?"})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

__all__ = ["TeamIO", "make_graph", "team_names"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "teams"


class TeamIO(TypedDict, total=False):
    """What the served graph takes (``task``, optional ``lessons``) and gives back."""

    task: str
    lessons: list[str]
    answer: dict[str, Any] | None
    stop_reason: str | None
    round: int
    report: dict[str, Any]
    steps: list[dict[str, Any]]


def team_names() -> list[str]:
    """The example teams a factory exists for (file stems)."""
    return sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


def make_graph(source: str | Path, config: Any = None) -> Any:
    """A compiled graph running the team ``source`` (an example's stem, or a team file)
    with its default run context."""
    from langgraph.graph import END, START, StateGraph

    from concilium import load_team

    path = Path(source)
    if not path.suffix:
        path = EXAMPLES / f"{source}.yaml"
    team = load_team(path)
    inner = team.compile()

    async def run_team(state: TeamIO) -> TeamIO:
        first = {"task": state["task"], "lessons": list(state.get("lessons") or []),
                 "steps": []}
        final = await inner.ainvoke(first, context=team.context())
        return {key: final.get(key) for key in  # type: ignore[return-value]
                ("answer", "stop_reason", "round", "report", "steps")}

    builder = StateGraph(TeamIO)
    builder.add_node(team.name, run_team)
    builder.add_edge(START, team.name)
    builder.add_edge(team.name, END)
    return builder.compile(name=team.name)


def _factory(stem: str) -> Any:
    def factory(config: Any = None) -> Any:
        return make_graph(stem, config)

    factory.__name__ = stem
    factory.__doc__ = f"LangGraph factory of examples/teams/{stem}.yaml."
    return factory


# LangGraph Server reads ``module.__dict__[name]``: the factories must be real attributes.
for _stem in team_names():
    globals()[_stem] = _factory(_stem)
