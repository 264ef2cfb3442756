"""``concilium runs``, ``concilium memory`` and ``concilium stats`` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.cli import memory as memory_cli
from concilium.cli import runs as runs_cli
from concilium.cli import stats as stats_cli
from concilium.memory.store import Memory

TASK = "A shop sells pencils at 17 cents each. How much do 24 pencils cost, plus a 3 cent bag?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
LESSON = "Recompute every product before adding the bag."

runner = CliRunner()


@pytest.fixture
def ran() -> str:
    """One recorded gvr run that failed and left a lesson; returns its run id."""
    team = load_team({"name": "cli-gvr", "strategy": "gvr", "limits": {"max_rounds": 1},
                      "memory": {"remember": "on_failure"},
                      "roles": {"generator": {}, "verifier": {"check": "calculator"},
                                "refiner": {}}}, model="scripted/cli")
    replies = {"generator": [WRONG], "refiner": [WRONG], "reflector": [f"Reflection: {LESSON}"]}
    with scripted.use("cli", scripted.Script(replies)):
        return team.run(TASK, reference="411", run_id="cli-run-1").run_id


def test_runs_list_and_show(ran: str) -> None:
    listed = runner.invoke(runs_cli.app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "cli-run-1" in listed.output and "cli-gvr" in listed.output
    as_json = runner.invoke(runs_cli.app, ["list", "--json"])
    row = json.loads(as_json.output.splitlines()[0])
    assert row["id"] == ran and row["correct"] is False and row["llm_calls"] == 3
    shown = runner.invoke(runs_cli.app, ["show", "cli-run"])
    assert shown.exit_code == 0, shown.output
    for text in ("run cli-run-1", "round 0", "round 1", "#1 generator (generator) scripted/cli",
                 "#2 verifier (verifier) calculator", "#5 reflector (reflector)",
                 "per role", "refiner"):
        assert text in shown.output, text
    detail = json.loads(runner.invoke(runs_cli.app, ["show", ran, "--json"]).output)
    assert [s["role"] for s in detail["steps"]] == ["generator", "verifier", "refiner",
                                                    "verifier", "reflector"]
    with_prompts = runner.invoke(runs_cli.app, ["show", ran, "--messages"])
    assert "user: " + TASK[:40] in with_prompts.output
    missing = runner.invoke(runs_cli.app, ["show", "nope"])
    assert missing.exit_code == 1 and "no run 'nope'" in missing.output


def test_runs_follow_needs_redis(ran: str) -> None:
    result = runner.invoke(runs_cli.app, ["follow", ran])
    assert result.exit_code == 2 and "CONCILIUM_REDIS_URL" in result.output


def test_memory_list_search_show_export_forget(ran: str, tmp_path: Path) -> None:
    listed = runner.invoke(memory_cli.app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "namespaces: cli-gvr (1)" in listed.output and "Recompute" in listed.output
    lessons = [json.loads(x) for x in
               runner.invoke(memory_cli.app, ["list", "--json"]).output.splitlines()]
    assert [x["lesson"] for x in lessons] == [LESSON] and lessons[0]["run_id"] == ran
    lesson_id = lessons[0]["id"]
    found = runner.invoke(memory_cli.app, ["search", "how much do pencils cost", "--json"])
    assert [json.loads(x)["id"] for x in found.output.splitlines()] == [lesson_id]
    assert "no lesson matches" in runner.invoke(memory_cli.app, ["search", "zebra"]).output
    shown = runner.invoke(memory_cli.app, ["show", str(lesson_id)])
    assert "verified by: ground_truth" in shown.output and f"run:         {ran}" in shown.output
    out = tmp_path / "lessons.jsonl"
    exported = runner.invoke(memory_cli.app, ["export", "--out", str(out)])
    assert exported.exit_code == 0 and "exported 1 lesson" in exported.output
    assert json.loads(out.read_text())["lesson"] == LESSON
    refused = runner.invoke(memory_cli.app, ["forget", "--namespace", "cli-gvr"], input="n\n")
    assert refused.exit_code == 1 and Memory.open().count() == 1
    gone = runner.invoke(memory_cli.app, ["forget", str(lesson_id)])
    assert gone.exit_code == 0 and "forgot 1 lesson" in gone.output
    assert runner.invoke(memory_cli.app, ["forget"]).exit_code == 2
    assert runner.invoke(memory_cli.app, ["show", str(lesson_id)]).exit_code == 1


def test_memory_distill_and_behaviors() -> None:
    memory = Memory.open()
    for i in range(3):
        memory.remember(f"Multiply the pencil price by the count first ({i}).", task=TASK,
                        namespace="shop", outcome="failure", verified_by="tool")
    reply = "NAME: Multiply first\nPROCEDURE: Multiply price by count before adding extras."
    with scripted.use("distil", scripted.Script({"distiller": [reply]})):
        made = runner.invoke(memory_cli.app, ["distill", "-n", "shop", "--model",
                                              "scripted/distil"])
        assert made.exit_code == 0, made.output
        assert "Multiply first: Multiply price by count" in made.output
        again = runner.invoke(memory_cli.app, ["distill", "-n", "shop", "--model",
                                               "scripted/distil"])
    assert "nothing to distill" in again.output
    listed = runner.invoke(memory_cli.app, ["behaviors"])
    assert listed.exit_code == 0 and "Multiply" in listed.output and "active" in listed.output
    row = json.loads(runner.invoke(memory_cli.app, ["behaviors", "--json"]).output)
    assert (row["namespace"], row["name"], row["source_lessons"]) == ("shop", "Multiply first",
                                                                     [1, 2, 3])
    assert row["uses"] == 0 and not row["quarantined"]


def test_stats(ran: str) -> None:
    table = runner.invoke(stats_cli.app, ["--since", "1h"])
    assert table.exit_code == 0, table.output
    assert "cli-gvr" in table.output and "total" in table.output
    rows = [json.loads(x) for x in
            runner.invoke(stats_cli.app, ["--by", "role", "--json"]).output.splitlines()]
    assert {r["role"]: r["calls"] for r in rows} == {"generator": 1, "refiner": 1,
                                                     "reflector": 1, "verifier": 0}
    assert "no runs since" in runner.invoke(stats_cli.app, ["--since", "2999-01-01"]).output
    bad = runner.invoke(stats_cli.app, ["--since", "yesterday"])
    assert bad.exit_code == 2 and "expected a span like 7d" in bad.output
    assert runner.invoke(stats_cli.app, ["--by", "colour"]).exit_code == 2
