"""``interrupt: before|after`` on a role: its node pauses for a person, in any strategy.

The strategy builds its graph as usual; :func:`add_gates` then wraps each gated
node's runnable, so no strategy module knows about people. ``before``: the person
sees what the node will work on and lets it run (an empty reply) or stops the run
(``stop``). ``after``: the node has run; the person keeps its result, stops the run,
or, if the node wrote an answer, types a corrected one, read like a model's answer.

The pause is LangGraph's ``interrupt()`` (see :mod:`concilium.agents.roles.human`),
so it needs the run's checkpointer; on resume LangGraph runs the wrapped node again,
and the call journal answers the model calls it had made.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from concilium.agents.context import RunContext
from concilium.errors import StoppedByPerson
from concilium.spec import TeamSpec

__all__ = ["add_gates", "gated_nodes"]


def gated_nodes(graph: StateGraph, team: TeamSpec) -> dict[str, tuple[str, str]]:
    """Role key -> (graph node, when) for every role with ``interrupt:``.

    A role's node is the one named like the role, else the one named like its kind
    (a debate's debaters all run in its ``debater`` node).

    Raises:
        KeyError: a gated role has no node of its own in this strategy's graph (the
            message is the role key).
    """
    found: dict[str, tuple[str, str]] = {}
    for key, role in team.roles.items():
        if role.interrupt is None:
            continue
        kind = team.kind_of(key)
        node = key if key in graph.nodes else kind if kind in graph.nodes else None
        if node is None:
            raise KeyError(key)
        found[key] = (node, role.interrupt)
    return found


def add_gates(graph: StateGraph, team: TeamSpec) -> StateGraph:
    """``graph`` with each gated role's node wrapped in its person's pause."""
    from langgraph._internal._runnable import coerce_to_runnable

    for node, when in set(gated_nodes(graph, team).values()):
        spec = graph.nodes[node]
        wrapped = _gated(spec.runnable, node, when, team)  # type: ignore[arg-type]
        graph.nodes[node] = dataclasses.replace(
            spec, runnable=coerce_to_runnable(wrapped, name=node, trace=False)
        )
    return graph


def _gated(inner: Any, node: str, when: Literal["before", "after"], team: TeamSpec) -> Any:
    from concilium.agents.answers import extract
    from concilium.agents.roles.human import PERSON, gate, read_reply

    async def run(
        state: dict[str, Any], config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> Any:
        ctx = runtime.context
        number = int(state.get("round", 0) or 0)
        if when == "before":
            question, reply = gate(ctx, node, when, state)
            step = ctx.step(
                node=node,
                role=PERSON,
                round=number,
                output=reply,
                tool=PERSON,
                messages=[{"role": "user", "content": question}],
                parsed={"when": when, "reply": read_reply(reply)},
            )
            if read_reply(reply) == "stop":
                raise StoppedByPerson(f"stopped by a person before {node}")
            return _with(await inner.ainvoke(state, config), {}, step, first=True)
        out = await inner.ainvoke(state, config)
        update = out.update if isinstance(out, Command) else out
        update = dict(update or {}) if isinstance(update, dict) else {}
        question, reply = gate(ctx, node, when, {"task": state.get("task"), **update})
        meaning = read_reply(reply)
        held = update.get("answer")
        changes: dict[str, Any] = {}
        value = held.get("value") if isinstance(held, dict) else None
        if meaning == "edit" and isinstance(held, dict):
            fmt = team.answer
            value = extract(reply, fmt.format, fmt.pattern)
            changes["answer"] = {"text": reply, "value": value, "program": None}
        step = ctx.step(
            node=node,
            role=PERSON,
            round=number,
            output=reply,
            tool=PERSON,
            messages=[{"role": "user", "content": question}],
            parsed={"when": when, "reply": meaning},
            answer=value,
            previous=held.get("value") if isinstance(held, dict) else None,
            revision="answer" in changes,
        )
        if meaning == "stop":
            raise StoppedByPerson(f"stopped by a person after {node}")
        return _with(out, changes, step)

    return run


def _with(out: Any, changes: dict[str, Any], step: Any, *, first: bool = False) -> Any:
    """The node's output with ``changes`` applied and the person's ``step`` added."""
    command = isinstance(out, Command)
    raw = out.update if command else out
    update = dict(raw) if isinstance(raw, dict) else {}
    update.update(changes)
    steps = list(update.get("steps", []))
    update["steps"] = [step, *steps] if first else [*steps, step]
    return dataclasses.replace(out, update=update) if command else update
