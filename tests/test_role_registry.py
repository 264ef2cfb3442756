"""A role kind added in the tests alone: one module (this one) and one prompt file.

The kind registers itself; team validation, the prompt check, the JSON schema and
custom-graph nodes then know it, without a line of concilium changed. Outside the
``with`` block it is unknown again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from concilium import TeamFileError, load_team
from concilium.agents.answers import extract
from concilium.agents.context import RunContext
from concilium.agents.prompts import FORMAT_HINTS, render
from concilium.agents.providers import scripted
from concilium.agents.roles import registry
from concilium.agents.roles.kind import Played, RoleKind, Turn
from concilium.agents.roles.results import Answer
from concilium.spec import RoleSpec
from concilium.teams import team_json_schema

TASK = "What is 17 * 24 + 3?"
LONG = "First, 17 * 24 = 408. Then 408 + 3 = 411, as we add three.\nAnswer: 411"
SHORT = "17 * 24 + 3 = 411.\nAnswer: 411"


# ---------------------------------------------------------------- the role kind's module


async def summarize(
    ctx: RunContext, node: str, spec: RoleSpec, task: str, answer: Answer, *, round: int = 0
) -> tuple[Answer, dict]:
    """The role's function: one call, parsed into an Answer."""
    messages = render(
        "summarizer",
        spec.prompt,
        task=task,
        answer=answer.text,
        length=12,
        format_hint=FORMAT_HINTS[ctx.team.answer.format],
        round=round,
    )
    result = await ctx.chat(node, spec, messages, kind="summarizer")
    short = Answer(text=result.text, value=extract(result.text, ctx.team.answer.format))
    step = ctx.step(
        node=node,
        role="summarizer",
        round=round,
        messages=messages,
        result=result,
        parsed=short.model_dump(),
        answer=short.value,
        previous=answer.value,
        revision=True,
    )
    return short, step


async def node(ctx: RunContext, name: str, spec: RoleSpec, turn: Turn) -> Played:
    """What a summarizer node of a custom graph does."""
    short, step = await summarize(ctx, name, spec, turn.task, turn.answer, round=turn.round)
    found = short.model_dump()
    return Played({"answer": found}, {"answer": found}, step)


KIND = RoleKind(
    "summarizer",
    frozenset({"answer", "length"}),
    Answer,
    node,
    answers=True,
    prompt=Path(__file__).parent / "roles" / "summarizer.yaml",
)


# ---------------------------------------------------------------- the tests


@pytest.fixture
def summarizer() -> Iterator[RoleKind]:
    with registry.registered(KIND) as kind:
        yield kind


def team(**summarizer_spec: object) -> dict:
    return {
        "name": "summed",
        "strategy": {
            "name": "graph",
            "edges": [
                {"from": "generator", "to": "summarizer"},
                {"from": "summarizer", "to": "end"},
            ],
        },
        "roles": {"generator": {}, "summarizer": summarizer_spec},
    }


async def test_a_registered_kind_runs_as_a_custom_graph_node(summarizer: RoleKind) -> None:
    script = scripted.Script({"generator": [LONG], "summarizer": [SHORT]})
    with scripted.use("rk1", script):
        result = await load_team(team(), model="scripted/rk1").arun(TASK, reference="411")
    assert [(s["node"], s["role"]) for s in result.steps] == [
        ("generator", "generator"),
        ("summarizer", "summarizer"),
    ]
    assert result.answer == "411" and result.answer_text == SHORT and result.correct
    system = result.steps[1]["messages"][0]["content"]
    assert system.startswith("You restate solutions in at most 12 words.")  # its prompt file
    assert script.count("summarizer") == 1


def test_its_prompt_variables_are_checked_at_load_time(summarizer: RoleKind) -> None:
    load_team(team(prompt={"user": "Shorten to {{ length }} words: {{ answer }}"}))
    with pytest.raises(TeamFileError) as error:
        load_team(team(prompt={"user": "Shorten {{ verdict }}"}))
    assert "unknown template variable verdict" in str(error.value)
    assert "length" in str(error.value)  # the kind's own variables are offered


def test_the_schema_lists_it_while_registered(summarizer: RoleKind) -> None:
    roles = team_json_schema()["properties"]["roles"]
    assert "summarizer" in roles["properties"]
    assert '"summarizer"' in json.dumps(roles["additionalProperties"])  # a `role:` value


def test_it_is_unknown_outside_its_registration() -> None:
    assert "summarizer" not in registry.names()
    with pytest.raises(TeamFileError) as error:
        load_team(team())
    assert "unknown role kind 'summarizer'" in str(error.value)
    assert "summarizer" not in team_json_schema()["properties"]["roles"]["properties"]


def test_a_kind_cannot_be_registered_twice_nor_a_built_in_one_removed(summarizer: RoleKind) -> None:
    with pytest.raises(ValueError, match="registered already"):
        registry.register(KIND)
    with pytest.raises(ValueError, match="built in"):
        registry.unregister("generator")
