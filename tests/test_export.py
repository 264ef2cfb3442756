"""``concilium export``: a ledger built from real scripted runs, exported in each format.

The runs are real (LangGraph, the ledger writer, the calculator verifier, the vote);
only the model is scripted. Pairs and MALT credit values are checked against cases
computed by hand in the comments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_tools_calling import ToolServer, tool_server  # noqa: F401 (the fixture)
from test_tools_calling import team as tool_team
from typer.testing import CliRunner

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.cli.app import app
from concilium.eval.datasets import load_dataset
from concilium.eval.runner import EvalOptions, Evaluation
from concilium.export import Filters, HeldOut, builder, read_runs
from concilium.export.malt import nodes
from concilium.memory.store import Memory

GVR_TASK = "What is 17 * 24 + 3?"
SC_TASK = "What is 6 * 7?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
WRONG2 = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
LEAK = "tok-7f3a9c2e1b"
"""A string in a model reply that only later becomes a configured secret."""

GVR = {"name": "gvr-x", "strategy": "gvr", "limits": {"max_rounds": 1},
       "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}}}
SC = {"name": "sc-x", "strategy": {"name": "self_consistency", "samples": 3},
      "roles": {"generator": {"temperature": 0.7}}}
DEBATE = {"name": "debate-x", "strategy": {"name": "debate", "rounds": 2, "debaters": 2},
          "roles": {"debater": {"temperature": 0.7}}}
DEBATE_SAYS = {("debater_1", 0): "6 * 7 = 42.\nAnswer: 42",
               ("debater_2", 0): "6 * 7 = 41.\nAnswer: 41",
               ("debater_1", 1): "Still 42.\nAnswer: 42",
               ("debater_2", 1): "I was wrong: 6 * 7 = 42.\nAnswer: 42"}


async def build_ledger() -> None:
    """Two gvr runs (one flips wrong->right, one ends wrong), one 3-sample vote, one debate."""
    gvr = load_team(GVR, model="scripted/ex-gvr")
    with scripted.use("ex-gvr", scripted.Script({"generator": [WRONG, WRONG],
                                                 "refiner": [RIGHT + f"\n({LEAK})", WRONG2]})):
        first = await gvr.arun(GVR_TASK, reference="411")
        second = await gvr.arun(GVR_TASK, reference="411")
    assert first.correct is True and second.correct is False
    samples = ["Answer: 42", "Answer: 41", "Answer: 42"]
    with scripted.use("ex-sc", scripted.Script(
            default=lambda call: samples[call.params["seed"]])):
        assert (await load_team(SC, model="scripted/ex-sc").arun(SC_TASK, reference="42")).correct

    def debater(call: scripted.ScriptCall) -> str:
        return DEBATE_SAYS[(call.node, 1 if "other agents" in call.prompt else 0)]

    with scripted.use("ex-db", scripted.Script(rules=[scripted.Rule(debater, role="debater")])):
        result = await load_team(DEBATE, model="scripted/ex-db").arun(SC_TASK, reference="42")
    assert result.correct is True and result.flips["wrong->right"] == 1


def exported(fmt: str, filters: Filters | None = None, held: HeldOut | None = None,
             ) -> list[dict[str, Any]]:
    runs, _ = read_runs(Memory.open(redis_url=False).db, filters, held)
    return builder(fmt)(runs)


def reply(row_part: list[dict[str, Any]]) -> str:
    assert len(row_part) == 1 and row_part[0]["role"] == "assistant"
    return str(row_part[0]["content"])


async def test_sft_keeps_the_right_runs_calls_but_not_their_wrong_drafts() -> None:
    await build_ledger()
    rows = exported("sft")
    # gvr #1: the refiner's fix (the generator's wrong draft and the tool verifier: no);
    # gvr #2 ended wrong: nothing; the vote: one right sample (two identical ones are one);
    # the debate: debater_1 twice and debater_2's corrected answer, not its wrong one.
    by_role: dict[str, list[str]] = {}
    for row in rows:
        assert row["messages"][-1]["role"] == "assistant" and row["messages"][0]["content"]
        by_role.setdefault(row["role"], []).append(row["messages"][-1]["content"])
    assert sorted(by_role) == ["debater", "generator", "refiner"]
    assert by_role["refiner"] == [RIGHT + "\n(" + LEAK + ")"]
    assert by_role["generator"] == ["Answer: 42"]
    assert sorted(by_role["debater"]) == sorted(
        [DEBATE_SAYS[("debater_1", 0)], DEBATE_SAYS[("debater_1", 1)],
         DEBATE_SAYS[("debater_2", 1)]])


async def test_dpo_pairs_from_flips_and_from_right_and_wrong_samples() -> None:
    await build_ledger()
    rows = exported("dpo")
    got = {(r["source"], r["role"], reply(r["chosen"]), reply(r["rejected"])) for r in rows}
    assert got == {
        # gvr: the refiner turned the generator's 401 into 411: prompt = the generator's.
        ("flip", "refiner", RIGHT + "\n(" + LEAK + ")", WRONG),
        # the vote: the same prompt answered right twice (one distinct reply) and wrong once.
        ("samples", "generator", "Answer: 42", "Answer: 41"),
        # the debate: debater_2 changed its mind in round 2: rejected = its round-1 answer.
        ("flip", "debater", DEBATE_SAYS[("debater_2", 1)], DEBATE_SAYS[("debater_2", 0)]),
    } | ({("samples", "debater", DEBATE_SAYS[("debater_1", 0)], DEBATE_SAYS[("debater_2", 0)])}
         if _same_first_round_prompt() else set())
    assert len(rows) == len(got)
    flip = next(r for r in rows if r["role"] == "refiner")
    assert flip["prompt"][-1]["role"] == "user" and GVR_TASK in flip["prompt"][-1]["content"]
    assert "Previous solution" not in flip["prompt"][-1]["content"]


def _same_first_round_prompt() -> bool:
    run = next(r for r in read_runs(Memory.open(redis_url=False).db)[0] if r.strategy == "debate")
    first = [s["messages"] for s in run.steps if s["role"] == "debater" and s["round"] == 0]
    return first[0] == first[1]


async def test_malt_credit_is_the_share_of_leaves_that_end_right() -> None:
    await build_ledger()
    trees = {tree["task"]: tree for tree in exported("malt")}
    gvr = trees[GVR_TASK]
    # Both gvr runs drew the same wrong draft and got the same calculator verdict, so they
    # share those two nodes; then one refinement ends right, the other wrong.
    #   generator 401 (2 leaves, 1 right: 0.5) -> verifier reject (0.5)
    #     -> refiner 411 (1.0) -> verifier accept (1.0)
    #     -> refiner 403 (0.0) -> verifier reject (0.0)
    chain = [(n["role"], n["answer"], n["leaves"], n["value"], n["label"]) for n in gvr["nodes"]]
    assert chain == [("generator", "401", 2, 0.5, "good"), ("verifier", "401", 2, 0.5, "good"),
                     ("refiner", "411", 1, 1.0, "good"), ("verifier", "411", 1, 1.0, "good"),
                     ("refiner", "403", 1, 0.0, "bad"), ("verifier", "403", 1, 0.0, "bad")]
    assert gvr["value"] == 0.5 and len(gvr["runs"]) == 2
    ids = {n["id"]: n for n in gvr["nodes"]}
    assert [ids[n["parent"]]["role"] if n["parent"] else None for n in gvr["nodes"]] == [
        None, "generator", "verifier", "refiner", "verifier", "refiner"]
    # 6 * 7: three samples (42, 41, 42) and two debaters' lines (42->42, 41->42): 5 leaves,
    # 4 right. The two identical 42 samples are one node with 2 leaves; debater_2's wrong
    # first answer is still 'good' (value 1.0): the path through it ends right.
    vote = trees[SC_TASK]
    assert vote["leaves"] == 5 and vote["value"] == 0.8
    values = {(n["role"], n["output"]): (n["leaves"], n["value"], n["label"])
              for n in vote["nodes"]}
    assert values[("generator", "Answer: 42")] == (2, 1.0, "good")
    assert values[("generator", "Answer: 41")] == (1, 0.0, "bad")
    assert values[("debater", DEBATE_SAYS[("debater_2", 0)])] == (1, 1.0, "good")
    assert {r["role"] for r in nodes(list(trees.values()))} == {
        "generator", "verifier", "refiner", "debater"}


async def test_held_out_items_secrets_and_filters(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    await build_ledger()
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"question": SC_TASK, "answer": "42", "split": "test"}) + "\n"
                    + json.dumps({"question": GVR_TASK, "answer": "411", "split": "train"}) + "\n")
    held = HeldOut.from_paths([data])
    runs, skipped = read_runs(Memory.open(redis_url=False).db, Filters(), held)
    assert skipped == 2 and {r.task for r in runs} == {GVR_TASK}
    for fmt in ("sft", "dpo", "malt"):
        assert SC_TASK not in json.dumps(exported(fmt, held=held))
    # A key configured after the runs were recorded is still masked on the way out.
    monkeypatch.setenv("NEW_SERVICE_TOKEN", LEAK)
    text = json.dumps(exported("sft") + exported("dpo") + exported("malt"))
    assert LEAK not in text and "***" in text
    assert {r["team"] for r in exported("sft", Filters(strategy="debate"))} == {"debate-x"}
    assert exported("dpo", Filters(team="nobody")) == []
    assert len(exported("sft", Filters(model="scripted/ex-sc"))) == 1


async def test_an_eval_records_each_items_split_so_its_held_out_runs_stay_out(
        tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4", "split": "test"})
                    + "\n" + json.dumps({"question": "What is 3 + 3?", "answer": "6",
                                         "split": "train"}) + "\n")
    team = load_team({"name": "s", "strategy": "single", "roles": {"generator": {}}},
                     model="scripted/ex-ev")
    out = tmp_path / "eval"
    with scripted.use("ex-ev", scripted.Script(default="Answer: 4")):
        options = EvalOptions(concurrency=1, memory="read")  # "off" records no runs
        await Evaluation([team], load_dataset(data), out, options).run()
    records = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert sorted(r["split"] for r in records) == ["test", "train"]
    held = HeldOut.from_paths([out])
    runs, skipped = read_runs(Memory.open(redis_url=False).db, Filters(), held)
    assert skipped == 1 and [r.task for r in runs] == ["What is 3 + 3?"]


async def test_cli_export_stats_and_per_role_files(tmp_path: Path) -> None:
    await build_ledger()
    runner = CliRunner()
    result = runner.invoke(app, ["export", "--format", "malt", "--stats"])
    assert result.exit_code == 0, result.output
    assert "malt: 2 rows from 4 runs" in result.output
    assert "refiner      bad      1" in result.output and "refiner      good     1" in result.output
    result = runner.invoke(app, ["export", "--format", "sft", "--out", str(tmp_path / "sft")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "sft").iterdir()) == [
        "sft-debater.jsonl", "sft-generator.jsonl", "sft-refiner.jsonl"]
    result = runner.invoke(app, ["export", "--format", "dpo", "--out", str(tmp_path / "d.jsonl"),
                                 "--strategy", "gvr", "--outcome-known"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows] == ["flip"]
    result = runner.invoke(app, ["export", "--format", "xml"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["export", "--held-out", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no such dataset file" in result.output


async def test_sft_keeps_a_tool_calling_turn_as_the_model_sent_it(
    tool_server: Callable[..., ToolServer],  # noqa: F811 (the fixture, imported)
) -> None:
    """A turn that called a tool trains as OpenAI's ``tool_calls``, not as the ledger's
    human-readable ``calculator({...})`` line; the answer turn carries the tool's result."""
    server = tool_server()
    spec = tool_team(server, ["calculator"])
    result = await load_team(spec).arun(GVR_TASK, reference="411")
    assert result.correct is True
    rows = [row for row in exported("sft", Filters(team="tooled"))]
    assert [row["role"] for row in rows] == ["generator", "generator"]
    turn, answer = rows
    said = turn["messages"][-1]
    assert said["role"] == "assistant" and said["content"] is None
    assert said["tool_calls"] == [{"id": "call_a", "type": "function", "function": {
        "name": "calculator", "arguments": '{"expression": "17 * 24 + 3"}'}}]
    assert answer["messages"][-3] == said  # the next call was sent the same turn
    assert answer["messages"][-2] == {"role": "tool", "tool_call_id": "call_a",
                                      "name": "calculator", "content": "411"}
    assert answer["messages"][-1]["content"].endswith("Answer: 411")
