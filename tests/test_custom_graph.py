"""``strategy: graph``: hand-wired graphs run as declared; broken ones fail at load time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from concilium import TeamFileError, load_team
from concilium.agents.providers import scripted
from concilium.cli.app import app
from concilium.graphs.conditions import parse_condition
from concilium.teams import load_spec

BAD = sorted((Path(__file__).parent / "bad_graphs").glob("*.yaml"))
TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
WRONG2 = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"


def graph(edges: list[dict[str, Any]], roles: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"name": "g", "strategy": {"name": "graph", "edges": edges, **options}, "roles": roles}


GVR = graph(
    [{"from": "generator", "to": "verifier"},
     {"from": "verifier", "to": "end", "when": "verdict.accepted"},
     {"from": "verifier", "to": "refiner", "when": "rounds < 2"},
     {"from": "refiner", "to": "verifier"}],
    {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}},
    finish=["verifier"], max_rounds=5,
)


def nodes(result: Any) -> list[str]:
    return [s["node"] for s in result.steps]


async def test_a_hand_wired_gvr_accepts_at_once() -> None:
    with scripted.use("c1", scripted.Script({"generator": [RIGHT]})):
        result = await load_team(GVR, model="scripted/c1").arun(TASK)
    assert nodes(result) == ["generator", "verifier"]
    assert result.stop_reason == "verifier -> end (verdict.accepted)"


async def test_a_rounds_condition_bounds_the_loop() -> None:
    with scripted.use("c2", scripted.Script({"generator": [WRONG]}, default=WRONG2)) as script:
        result = await load_team(GVR, model="scripted/c2").arun(TASK)
    assert nodes(result) == ["generator", "verifier", "refiner", "verifier", "refiner", "verifier"]
    assert script.count("refiner") == 2 and result.rounds == 2
    assert result.stop_reason == "finished at verifier"


async def test_refinements_record_flips() -> None:
    with scripted.use("c3", scripted.Script({"generator": [WRONG], "refiner": [RIGHT]})):
        result = await load_team(GVR, model="scripted/c3").arun(TASK, reference="411")
    assert result.answer == "411"
    assert result.flips == {"changed": 1, "right->wrong": 0, "wrong->right": 1}


async def test_the_global_round_limit_stops_any_cycle() -> None:
    spec = graph([{"from": "generator", "to": "critic"},
                  {"from": "critic", "to": "end", "when": "not critique.issues"},
                  {"from": "critic", "to": "refiner"},
                  {"from": "refiner", "to": "critic"}],
                 {"generator": {}, "critic": {}, "refiner": {}}, max_rounds=2)
    with scripted.use("c4", scripted.Script({"critic": []}, default="- wrong")) as script:
        result = await load_team(spec, model="scripted/c4").arun(TASK)
    # The limit counts closed cycles (refiner -> critic); the third refinement is not critiqued.
    assert script.count("refiner") == 3 and script.count("critic") == 3
    assert result.stop_reason == "round limit (2) reached at refiner" and result.rounds == 2


async def test_parallel_entry_nodes_run_concurrently_and_consensus_ends_the_run() -> None:
    # Parallel nodes cannot see each other's results, so agreement is tested after the join.
    spec = graph([{"from": "a", "to": "check"}, {"from": "b", "to": "check"},
                  {"from": "check", "to": "end", "when": "consensus"},
                  {"from": "check", "to": "judge"}],
                 {"a": {"role": "generator"}, "b": {"role": "generator"},
                  "check": {"role": "verifier", "check": "calculator"}, "judge": {}},
                 entry=["a", "b"], finish=["judge"])
    from waiting import peak_in_flight

    script = scripted.Script(default=RIGHT)
    peak = peak_in_flight(script, latency_s=1.0)  # an event, not a stopwatch: a busy machine
    with scripted.use("c5", script):
        result = await load_team(spec, model="scripted/c5").arun(TASK, memory=False)
    assert sorted(nodes(result)) == ["a", "b", "check"] and script.count("judge") == 0
    assert peak() == 2, f"the two entry nodes' calls were never in flight together: {peak()}"
    with scripted.use("c6", scripted.Script(
            {"a": [WRONG], "b": [RIGHT], "judge": ["b is right.\nAnswer: 411"]})):
        result = await load_team(spec, model="scripted/c6").arun(TASK, reference="411")
    assert sorted(nodes(result)) == ["a", "b", "check", "judge"] and result.answer == "411"


async def test_debaters_and_a_moderator_wired_by_hand() -> None:
    spec = graph([{"from": "pro", "to": "con"}, {"from": "con", "to": "moderator"},
                  {"from": "moderator", "to": "end", "when": "decision.stop"},
                  {"from": "moderator", "to": "pro", "when": "rounds < 1"}],
                 {"pro": {"role": "debater"}, "con": {"role": "debater"}, "moderator": {}},
                 finish=["moderator"])
    script = scripted.Script({"pro": ["Answer: 41", "Answer: 42"], "con": ["Answer: 42"] * 2,
                              "moderator": ["WINNER: none", "WINNER: negative"]})
    with scripted.use("c7", script):
        result = await load_team(spec, model="scripted/c7").arun(TASK)
    assert nodes(result) == ["pro", "con", "moderator"] * 2
    assert "[pro]\nAnswer: 41" in script.calls[1].prompt  # con read pro
    assert result.answer == "42" and result.stop_reason == "moderator -> end (decision.stop)"


async def test_reflexion_wired_by_hand_puts_the_reflection_in_the_next_trial() -> None:
    spec = graph([{"from": "generator", "to": "verifier"},
                  {"from": "verifier", "to": "end", "when": "verdict.accepted"},
                  {"from": "verifier", "to": "reflector", "when": "rounds < 2"},
                  {"from": "reflector", "to": "generator"}],
                 {"generator": {}, "verifier": {"check": "reference"}, "reflector": {}},
                 finish=["verifier"])
    script = scripted.Script({"reflector": ["Reflection: 17 * 24 is 408"]}, rules=[
        scripted.Rule(lambda c: RIGHT if "17 * 24 is 408" in c.prompt else WRONG,
                      role="generator")])
    with scripted.use("c8", script):
        result = await load_team(spec, model="scripted/c8").arun(TASK, reference="411")
    assert result.answer == "411" and script.count("generator") == 2
    assert result.flips["wrong->right"] == 1


def test_conditions_are_parsed_never_evaluated() -> None:
    condition = parse_condition("not verdict.accepted and rounds < 3")
    view = {"verdict": {"accepted": False}, "round": 2}
    assert condition.holds(view, str.__eq__) and condition.bounds_rounds
    assert not condition.holds({**view, "round": 3}, str.__eq__)
    assert not parse_condition("rounds >= 2").bounds_rounds
    assert parse_condition("not rounds >= 2").bounds_rounds
    with pytest.raises(ValueError, match="unknown condition"):
        parse_condition("1 == 1")


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_broken_graph_is_rejected_with_file_line_and_field(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.match(r"# expect: (\d+) \| (\S+) \| (.+)$", first)
    assert match, f"{path.name} lacks its '# expect: line | field | message' header"
    with pytest.raises(TeamFileError) as caught:
        load_spec(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), int(match[1]), match[2]), str(error)
    assert match[3] in error.message
    assert str(error).startswith(f"{path}:{match[1]}: {match[2]}: ")


def test_teams_graph_draws_the_edges_with_their_conditions(examples: Path) -> None:
    drawn = CliRunner().invoke(app, ["teams", "graph", str(examples / "custom_graph.yaml")])
    assert drawn.exit_code == 0, drawn.output
    assert "__start__ --> pal;" in drawn.output and "__start__ --> prose;" in drawn.output
    assert "checker -. &nbsp;consensus | verdict.accepted&nbsp; .-> __end__;" in drawn.output
    assert "rounds &lt; 2" in drawn.output


@pytest.mark.parametrize("first", ["a", "b"])
async def test_after_a_join_the_first_listed_nodes_answer_is_checked(first: str) -> None:
    second = "b" if first == "a" else "a"
    spec = graph([{"from": "a", "to": "check"}, {"from": "b", "to": "check"}],
                 {first: {"role": "generator"}, second: {"role": "generator"},
                  "check": {"role": "verifier", "check": "calculator"}},
                 entry=["a", "b"], finish=["check"])
    with scripted.use("c9", scripted.Script({"a": [RIGHT], "b": [WRONG]})):
        result = await load_team(spec, model="scripted/c9").arun(TASK)
    checked = result.steps[-1]
    assert checked["node"] == "check" and checked["answer"] == ("411" if first == "a" else "401")
    assert result.answer == checked["answer"]
