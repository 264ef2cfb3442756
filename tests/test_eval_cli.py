"""``concilium eval`` through Typer: tables, files, exit codes, resume, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from interrupts import takes_ctrl_c
from typer.testing import CliRunner
from waiting import wait_for

from concilium.agents.providers import faulty, scripted
from concilium.agents.providers.scripted import Rule, Script, ScriptCall
from concilium.cli.eval import register

DATA = Path(__file__).parent / "data"
KNOWN = str(DATA / "eval_known.jsonl")
BAD = Path(__file__).parent / "bad_teams"
runner = CliRunner()


def make_app() -> typer.Typer:
    """An app like ``concilium``'s, with ``eval`` registered the way app.py does it."""
    app = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None,
                      add_completion=False)
    app.callback()(lambda: None)
    register(app)
    return app


def solve(call: ScriptCall) -> str:
    from concilium.tools.calculator import evaluate, find_expression

    expression = find_expression(call.prompt)
    value = int(evaluate(expression)) if expression else 0
    return f"Answer: {value if value % 2 else value + 1}"  # wrong on the even answers


@pytest.fixture
def gvr_team(tmp_path: Path) -> Path:
    path = tmp_path / "gvr-llm.yaml"
    path.write_text("name: gvr-llm\nstrategy: gvr\nroles:\n  generator: {}\n  verifier: {}\n"
                    "  refiner: {}\n")
    return path


def oracle() -> Script:
    """Generator wrong on even answers; verifier and refiner put it right."""
    from concilium.tools.calculator import evaluate, find_expression

    def verify(call: ScriptCall) -> str:
        value = int(evaluate(find_expression(call.prompt) or "0"))
        return "VERDICT: correct" if f"final answer {value} " in call.prompt else (
            "VERDICT: incorrect")

    def refine(call: ScriptCall) -> str:
        return f"Answer: {int(evaluate(find_expression(call.prompt) or '0'))}"

    return Script(rules=[Rule(solve, role="generator"), Rule(verify, role="verifier"),
                         Rule(refine, role="refiner")])


def test_eval_prints_tables_and_writes_results(tmp_path: Path, examples: Path,
                                               gvr_team: Path) -> None:
    out = tmp_path / "report"
    with scripted.use("cli", oracle()) as script:
        result = runner.invoke(make_app(), [
            "eval", str(examples / "single.yaml"), str(gvr_team), "--dataset", "arith:20:3",
            "--limit", "12", "--concurrency", "4", "--model", "scripted/cli", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    names = [t["name"] for t in summary["teams"]]
    assert names == ["single", "gvr-llm"]
    single, refined = summary["teams"]
    wrong = sum(1 for r in (out / "items.jsonl").read_text().splitlines()
                if json.loads(r)["team"] == "single" and not json.loads(r)["correct"])
    assert single["accuracy"] == pytest.approx((12 - wrong) / 12) and refined["accuracy"] == 1.0
    assert refined["flips"]["wrong->right"] == wrong > 0
    assert summary["complete"] and summary["dataset"]["items"] == 12
    table = result.stdout
    assert "single" in table and "gvr-llm" in table and "100.0%" in table
    assert "paired comparisons (McNemar)" in table and "right→wrong" in table
    assert "wrote" in result.stderr and "summary.json" in result.stderr
    assert "acc" in result.stderr and "tok" in result.stderr  # the progress bars
    for name in ("items.jsonl", "report.md", "accuracy_tokens.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name

    calls = script.count()
    with scripted.use("cli", oracle()) as again:
        rerun = runner.invoke(make_app(), [
            "eval", str(examples / "single.yaml"), str(gvr_team), "-d", "arith:20:3",
            "--limit", "12", "-m", "scripted/cli", "-o", str(out), "--json"])
        assert rerun.exit_code == 0, rerun.output
        assert again.count() == 0 and calls > 0  # resumed: nothing left to run
    assert json.loads(rerun.stdout)["teams"] == summary["teams"]
    assert rerun.stderr == ""


def test_dataset_field_options_and_format(tmp_path: Path, examples: Path) -> None:
    team = tmp_path / "text.yaml"
    team.write_text("name: geo\nstrategy: single\nanswer:\n  format: text\n"
                    "roles:\n  generator: {}\n")
    replies = {"France": "Answer: Paris.", "planet": "Answer: the planet Jupiter",
               "letter": "Answer: B"}
    script = Script(rules=[Rule(lambda c, k=k, v=v: v, match=k) for k, v in replies.items()])
    with scripted.use("geo", script):
        result = runner.invoke(make_app(), [
            "eval", str(team), "-d", str(DATA / "eval_fields.jsonl"), "--question-field",
            "prompt", "--answer-field", "target", "-m", "scripted/geo", "-o", str(tmp_path / "o"),
            "-q"])
    assert result.exit_code == 0, result.output
    [geo] = json.loads((tmp_path / "o" / "summary.json").read_text())["teams"]
    assert geo["accuracy"] == pytest.approx(2 / 3) and geo["grader"] == "text"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "missing.jsonl"], "no such dataset file"),
        (["-d", KNOWN, "--limit", "0"], "no items selected"),
        (["-d", KNOWN, "--concurrency", "0"], "--concurrency must be 1 or more"),
        (["-d", KNOWN, "--question-field", "q"], "no field 'q'"),
        (["-d", str(DATA / "eval_bad_json.jsonl")], "eval_bad_json.jsonl:2: not valid JSON"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, examples: Path, args: list[str], message: str) -> None:
    result = runner.invoke(make_app(), ["eval", str(examples / "single.yaml"), *args,
                                        "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_bad_team_file_and_bad_choice_exit_2(tmp_path: Path, examples: Path) -> None:
    result = runner.invoke(make_app(), ["eval", str(BAD / "unknown_strategy.yaml"), "-d", KNOWN])
    assert result.exit_code == 2 and "unknown_strategy.yaml" in result.stderr
    result = runner.invoke(make_app(), ["eval", str(tmp_path / "nope.yaml"), "-d", KNOWN])
    assert result.exit_code == 2 and "no such file" in result.stderr
    result = runner.invoke(make_app(), ["eval", str(examples / "single.yaml"), "-d", KNOWN,
                                        "--memory", "sometimes"])
    assert result.exit_code == 2 and "sometimes" in result.output
    result = runner.invoke(make_app(), ["eval", str(examples / "single.yaml"),
                                        str(examples / "single.yaml"), "-d", KNOWN])
    assert result.exit_code == 2 and "share the name 'single'" in result.stderr


def test_failed_items_exit_1_and_a_rerun_retries_them(tmp_path: Path) -> None:
    team = tmp_path / "flaky.yaml"
    team.write_text("name: flaky\nstrategy: single\nmodel: faulty/down\nretry:\n  attempts: 1\n"
                    "roles:\n  generator: {}\n")
    args = ["eval", str(team), "-d", "arith:3", "-o", str(tmp_path / "o"), "-q",
            "--requeue", "1", "--requeue-backoff", "0.001", "--cooldown", "0.01"]
    with scripted.use("inner", Script(default="Answer: 1")) as script:
        faulty.configure("down", faulty.Faults(inner="scripted/inner", server_error=1.0))
        result = runner.invoke(make_app(), args)
        assert result.exit_code == 1, result.output
        assert "3 item run(s) failed" in result.stderr and "rerun the same command" in result.stderr
        faulty.configure("down", faulty.Faults(inner="scripted/inner"))
        result = runner.invoke(make_app(), args)
        assert result.exit_code == 0, result.output
        assert script.count() == 3


def test_ctrl_c_leaves_a_valid_partial_result_that_resumes(tmp_path: Path,
                                                           examples: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "slow.yaml").write_text("default: 'Answer: 7'\n")
    out = tmp_path / "out"
    args = ["eval", str(examples / "single.yaml"), "-d", "arith:16:1", "-c", "2",
            "-m", "scripted/slow", "-o", str(out)]
    # The first 3 calls are answered at once, every later one hangs: Ctrl-C lands when
    # exactly 3 items are done and 2 are in flight, however slow the machine.
    program = ("import itertools\nfrom concilium.agents.providers import scripted\n"
               "script = scripted.get('slow')\nstarts = itertools.count()\n"
               "script.latency_s = lambda _call: 0.0 if next(starts) < 3 else 600.0\n"
               "import typer; from concilium.cli.eval import register\n"
               "app = typer.Typer(pretty_exceptions_enable=False)\n"
               "app.callback()(lambda: None); register(app); app()")
    env = {**os.environ, "CONCILIUM_SCRIPTS_DIR": str(scripts),
           "CONCILIUM_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(takes_ctrl_c([sys.executable, "-c", program, *args]), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = out / "items.jsonl"
    try:
        wait_for(lambda: results.exists() and len(results.read_text().splitlines()) >= 3,
                 what="3 items in items.jsonl", process=process)
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=600)  # it still writes the report
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "(partial)" in stdout
    lines = results.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["status"] == "ok" for line in lines)
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False and partial["teams"][0]["done"] == len(lines)
    assert "Partial results" in (out / "report.md").read_text()

    with scripted.use("slow", Script(default="Answer: 7")) as script:  # same team, same hash
        resumed = runner.invoke(make_app(), [*args, "-q"])
        assert resumed.exit_code == 0, resumed.output
        assert script.count() == 16 - len(lines)
        whole = runner.invoke(make_app(), [*args[:-1], str(tmp_path / "whole"), "-q"])
        assert whole.exit_code == 0, whole.output
    done = json.loads((out / "summary.json").read_text())
    fresh = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert done["complete"] is True
    for team in (done["teams"][0], fresh["teams"][0]):
        team.pop("latency_ms")
    assert done["teams"] == fresh["teams"]
