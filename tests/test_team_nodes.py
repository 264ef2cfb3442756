"""Teams as building blocks: a team file as a custom graph's node (a LangGraph
subgraph), and role kinds a team file declares (``kinds:``), with the scripted model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from concilium import TeamFileError, load_team
from concilium.agents.providers import scripted
from concilium.memory.ledger import find_run, flush
from concilium.memory.store import Memory
from concilium.team import resume_run

TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "teams"

GVR = {
    "name": "inner",
    "strategy": "gvr",
    "limits": {"max_rounds": 2, "max_llm_calls": 6},
    "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}},
}


def write(where: Path, name: str, team: dict[str, Any]) -> Path:
    path = where / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(team))
    return path


def outer(nodes: dict[str, Any], edges: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {
        "name": "outer",
        "strategy": {"name": "graph", "edges": edges, **options},
        "roles": nodes,
        "limits": {"max_llm_calls": 30},
    }


async def test_a_team_node_runs_as_a_subgraph_and_its_steps_are_the_runs(tmp_path: Path) -> None:
    write(tmp_path / "teams", "gvr.json", GVR)
    path = write(
        tmp_path,
        "outer.yaml",
        outer(
            {"solver": {"team": "teams/gvr.json"}, "check": {"role": "verifier"}},
            [{"from": "solver", "to": "check"}],
            finish=["check"],
        ),
    )
    script = scripted.Script(
        {"generator": [WRONG], "refiner": [RIGHT], "check": ["VERDICT: correct"]}
    )
    with scripted.use("t1", script):
        result = await load_team(path, model="scripted/t1").arun(TASK, run_id="tn-1")
    nodes = [s["node"] for s in result.steps]
    assert nodes == [
        "solver/generator",
        "solver/verifier",
        "solver/refiner",
        "solver/verifier",
        "check",
    ]
    assert result.answer == "411" and "Answer: 411" in script.calls[-1].text
    assert result.usage.llm_calls == 3 and result.usage.tool_calls == 2
    assert result.usage.total_tokens == sum(
        s["prompt_tokens"] + s["completion_tokens"] for s in result.steps
    )
    await __import__("asyncio").to_thread(flush, 10.0)
    row = find_run(Memory.open(redis_url=False).db, "tn-1")
    assert row is not None and [s.node for s in row.steps] == nodes
    assert row.llm_calls == 3


async def test_inner_calls_count_against_the_outer_budget(tmp_path: Path) -> None:
    write(tmp_path, "gvr.json", GVR)
    spec = outer(
        {"a": {"team": "gvr.json"}, "b": {"role": "generator"}},
        [{"from": "a", "to": "b"}],
        finish=["b"],
    )
    spec["limits"] = {"max_llm_calls": 2}
    path = write(tmp_path, "outer.json", spec)
    with scripted.use("t2", scripted.Script({}, default=WRONG)):
        result = await load_team(path, model="scripted/t2").arun(TASK)
    # The inner team made 3 calls under its own limit (6); the outer limit (2) is spent.
    assert result.status == "stopped" and "max_llm_calls (2)" in (result.stop_reason or "")
    assert [s["node"] for s in result.steps if s["kind"] == "llm"] == [
        "a/generator",
        "a/refiner",
        "a/refiner",
    ]


async def test_debate_of_gvr_teams_reads_both_and_revisits_on_disagreement() -> None:
    team = load_team(EXAMPLES / "debate_of_gvr.yaml", model="scripted/t3")
    # Round 1: both teams stay wrong (403 and 401); round 2 they read each other and fix it.
    script = scripted.Script(
        {},
        rules=[
            scripted.Rule(role="generator", match="Solutions from the others", reply=RIGHT),
            scripted.Rule(role="generator", reply=WRONG),
            scripted.Rule(role="refiner", match="Expression:", reply="Expression: 17 * 24 - 7"),
            scripted.Rule(role="refiner", reply=WRONG),
            scripted.Rule(role="judge", reply="Answer: 411"),
        ],
    )
    with scripted.use("t3", script):
        result = await team.arun(TASK, reference="411")
    assert result.answer == "411" and result.correct
    assert result.stop_reason == "judge -> end (consensus)"
    second = [c for c in script.calls if c.node == "generator" and "[pal]" in c.text]
    assert second, "in round 2 the calculator team's generator read the pal team's answer"
    assert {s["node"].split("/")[0] for s in result.steps} == {"calculator", "pal", "judge"}


async def test_a_person_inside_an_inner_team_pauses_the_whole_run(tmp_path: Path) -> None:
    asked = {**GVR, "roles": {"generator": {}, "verifier": {"role": "human"}, "refiner": {}}}
    write(tmp_path, "asked.json", asked)
    path = write(
        tmp_path,
        "outer.json",
        outer(
            {"inner": {"team": "asked.json"}, "final": {"role": "verifier", "check": "calculator"}},
            [{"from": "inner", "to": "final"}],
            finish=["final"],
        ),
    )
    with scripted.use("t4", scripted.Script({"generator": [WRONG], "refiner": [RIGHT]})) as s:
        paused = await load_team(path, model="scripted/t4").arun(TASK, run_id="tn-4")
        assert paused.status == "paused" and paused.pending[0]["node"] == "verifier"
        again = await resume_run("tn-4", answer="no, 17 * 24 is 408")
        assert again.status == "paused"
        done = await resume_run("tn-4", answer="yes")
    assert done.status == "ok" and done.answer == "411" and s.count() == 2
    assert [s["node"] for s in done.steps] == [
        "inner/generator",
        "inner/verifier",
        "inner/refiner",
        "inner/verifier",
        "final",
    ]


def test_team_files_that_include_themselves_or_are_broken_are_refused(tmp_path: Path) -> None:
    loop = outer(
        {"me": {"team": "loop.json"}, "g": {"role": "generator"}},
        [{"from": "me", "to": "g"}],
        finish=["g"],
    )
    with pytest.raises(TeamFileError, match="includes itself"):
        load_team(write(tmp_path, "loop.json", loop))
    broken = outer({"x": {"team": "missing.yaml"}}, [], finish=["x"])
    with pytest.raises(TeamFileError, match=r"missing\.yaml: no such file"):
        load_team(write(tmp_path, "broken.json", broken))
    write(tmp_path, "gvr.json", GVR)
    with pytest.raises(TeamFileError, match="a team as a node needs strategy: graph"):
        load_team(
            write(
                tmp_path,
                "gvr_outer.json",
                {**GVR, "roles": {**GVR["roles"], "generator": {"team": "gvr.json"}}},
            )
        )


KINDS = {
    "name": "k",
    "strategy": {
        "name": "graph",
        "finish": ["review"],
        "edges": [
            {"from": "restate", "to": "solve"},
            {"from": "solve", "to": "review"},
            {"from": "review", "to": "fix", "when": "critique.issues and rounds < 1"},
            {"from": "fix", "to": "review"},
        ],
    },
    "kinds": {
        "restatement": {"output": "text", "prompt": {"system": "Restate.", "user": "{{ task }}"}},
        "solver": {
            "output": "answer",
            "prompt": {
                "system": "Solve. {{ format_hint }}",
                "user": "{{ task }}{% for n in notes %} ({{ n.text }}){% endfor %}",
            },
        },
        "reviewer": {
            "output": "critique",
            "prompt": {"system": "Review.", "user": "{{ answer }} -> {{ final }}"},
        },
    },
    "roles": {
        "restate": {"role": "restatement"},
        "solve": {"role": "solver"},
        "review": {"role": "reviewer"},
        "fix": {"role": "refiner"},
    },
}


async def test_kinds_a_team_declares_give_text_answers_and_critiques() -> None:
    script = scripted.Script(
        {
            "restate": ["Multiply, then add three."],
            "solve": [WRONG],
            "review": ["ISSUE: 17 * 24 is 408", "NO ISSUES"],
            "fix": [RIGHT],
        }
    )
    with scripted.use("t5", script):
        result = await load_team(KINDS, model="scripted/t5").arun(TASK, reference="411")
    assert result.answer == "411" and result.correct
    assert [(s["node"], s["role"]) for s in result.steps] == [
        ("restate", "restatement"),
        ("solve", "solver"),
        ("review", "reviewer"),
        ("fix", "refiner"),
        ("review", "reviewer"),
    ]
    assert script.calls[1].prompt == f"{TASK} (Multiply, then add three.)"
    assert "17 * 24 is 408" in script.calls[3].text  # the critique reached the refiner
    assert result.steps[2]["parsed"]["issues"] == ["17 * 24 is 408"]
    assert result.steps[1]["parsed"]["value"] == "403"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kinds": {"judge": {"prompt": {"user": "x"}}}}, "'judge' is a built-in kind"),
        (
            {"kinds": {"solver": {"output": "answer", "prompt": {"user": "{{ nope }}"}}}},
            "unknown template variable nope",
        ),
        ({"roles": {"restate": {"role": "restatment"}}}, "unknown role kind 'restatment'"),
    ],
)
def test_declared_kinds_are_checked_at_load(change: dict[str, Any], message: str) -> None:
    spec = {
        **KINDS,
        "kinds": {**KINDS["kinds"], **change.get("kinds", {})},
        "roles": {**KINDS["roles"], **change.get("roles", {})},
    }
    with pytest.raises(TeamFileError, match=message):
        load_team(spec)


def test_declared_kinds_need_a_custom_graph() -> None:
    with pytest.raises(TeamFileError, match="strategy: graph"):
        load_team(
            {
                "name": "s",
                "strategy": "single",
                "roles": {"generator": {}},
                "kinds": {"mine": {"prompt": {"user": "{{ task }}"}}},
            }
        )


async def test_the_custom_kinds_example_runs() -> None:
    script = scripted.Script(
        {
            "restate": ["Multiply 17 by 24, add 3."],
            "solver": [WRONG],
            "sanity": ["VERDICT: incorrect, too small", "VERDICT: correct"],
            "fixer": [RIGHT],
        }
    )
    with scripted.use("t6", script):
        result = await load_team(EXAMPLES / "custom_kinds.yaml", model="scripted/t6").arun(TASK)
    assert result.answer == "411" and result.stop_reason == "sanity -> end (verdict.accepted)"
    assert "In plain words: Multiply 17 by 24, add 3." in script.calls[2].text
