"""Trust from the outside: what an evaluation writes, and what its teams may see.

- A key of ours planted in a dataset question is masked in ``items.jsonl``,
  ``summary.json`` and the report, as a run masks it in its task.
- The dataset's answers are the grader's: a ``check: reference`` verifier sees
  them only with ``--reveal-reference``, and the report marks the teams that did.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from concilium.agents.providers import scripted
from concilium.eval.datasets import load_dataset
from concilium.eval.report import SAW_KEY, write_report
from concilium.eval.runner import EvalOptions, Evaluation
from concilium.team import load_team

SECRET = "cnc-test-9f83b2e1d7a4"
ITEMS = [("What is 2 + 3?", "5"), ("What is 4 * 6?", "24"), ("What is 9 - 7?", "2")]


def write_items(path: Path, suffix: str = "") -> Path:
    path.write_text("".join(json.dumps({"question": q + suffix, "answer": a}) + "\n"
                            for q, a in ITEMS), encoding="utf-8")
    return path


def right(call: scripted.ScriptCall) -> str:
    for question, answer in ITEMS:
        if question in call.text:
            return f"Answer: {answer}"
    raise AssertionError(f"unknown question in {call.text!r}")


def test_a_planted_key_is_masked_in_everything_the_eval_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #10.4: the key was written verbatim into items.jsonl's `question`."""
    monkeypatch.setenv("CONCILIUM_TEST_SECRET_KEY", SECRET)
    data = load_dataset(write_items(tmp_path / "items.jsonl", f" (use key {SECRET})"))
    team = load_team({"name": "plain", "strategy": "single", "roles": {"generator": {}}},
                     model="scripted/right")
    out = tmp_path / "out"
    with scripted.use("right", scripted.Script(default=right)) as script:
        evaluation = Evaluation([team], data, out, EvalOptions())
        asyncio.run(evaluation.run())
    summary = evaluation.write_summary()
    md = write_report(summary, evaluation.records(), out)
    html = write_report(summary, evaluation.records(), out, "html")
    assert summary["teams"][0]["accuracy"] == 1.0  # grading still used the real items
    assert all(SECRET not in c.text for c in script.calls)  # the run path masks the task
    written = {p.name: p.read_text(encoding="utf-8")
               for p in (evaluation.results_path, evaluation.summary_path, md.path, html.path)}
    for name, text in written.items():
        assert SECRET not in text, name
    records = [json.loads(line) for line in written["items.jsonl"].splitlines()]
    assert all(r["question"].endswith("(use key ***)") for r in records)

    # a rerun resumes from the masked records: nothing is run again
    with scripted.use("right", scripted.Script(default=right)) as again:
        asyncio.run(Evaluation([team], data, out, EvalOptions()).run())
    assert again.count() == 0


def reference_team() -> object:
    """gvr whose verifier compares with the reference; the generator first says 7."""
    return load_team({"name": "keyed", "strategy": "gvr",
                      "limits": {"max_rounds": 2, "max_llm_calls": 6},
                      "roles": {"generator": {}, "verifier": {"check": "reference"},
                                "refiner": {}}}, model="scripted/keyed")


def keyed_script() -> scripted.Script:
    return scripted.Script(rules=[scripted.Rule("Answer: 7", role="generator"),
                                  scripted.Rule(right, role="refiner")])


def test_check_reference_does_not_see_the_answer_key_unless_revealed(tmp_path: Path) -> None:
    """Issue #10.5: every run got the key as `reference`, so this team was graded by it."""
    data = load_dataset(write_items(tmp_path / "items.jsonl"))
    with scripted.use("keyed", keyed_script()) as script:
        hidden = Evaluation([reference_team()], data, tmp_path / "hidden", EvalOptions())
        asyncio.run(hidden.run())
    assert script.count("refiner") == 0  # no key: nothing to reject, the first answer stands
    [team] = hidden.write_summary()["teams"]
    assert team["accuracy"] == 0.0 and team["checks_reference"] and not team["saw_reference"]
    verdicts = [r for r in hidden.records()["keyed"]]
    assert all(not r["reference_revealed"] for r in verdicts)
    page = write_report(hidden.summary(), hidden.records(), tmp_path / "hidden").path.read_text()
    assert SAW_KEY not in page and "ran without the answer key" in page

    with scripted.use("keyed", keyed_script()) as script:
        shown = Evaluation([reference_team()], data, tmp_path / "shown",
                           EvalOptions(reveal_reference=True))
        asyncio.run(shown.run())
    assert script.count("refiner") == 3  # the key rejected each 7, the refiner fixed it
    summary = shown.write_summary()
    [team] = summary["teams"]
    assert team["accuracy"] == 1.0 and team["saw_reference"]
    assert summary["options"]["reveal_reference"] is True
    page = write_report(summary, shown.records(), tmp_path / "shown").path.read_text()
    assert f"| keyed{SAW_KEY} |" in page and "graded by the key" in page


def test_results_of_the_other_reveal_setting_are_not_reused(tmp_path: Path) -> None:
    data = load_dataset(write_items(tmp_path / "items.jsonl"))
    with scripted.use("keyed", keyed_script()) as script:
        asyncio.run(Evaluation([reference_team()], data, tmp_path, EvalOptions()).run())
        asyncio.run(Evaluation([reference_team()], data, tmp_path,
                               EvalOptions(reveal_reference=True)).run())
        assert script.count("generator") == 6  # a different experiment: run again
        asyncio.run(Evaluation([reference_team()], data, tmp_path,
                               EvalOptions(reveal_reference=True)).run())
        assert script.count("generator") == 6  # the same one: resumed


def test_the_cli_flag_reveals_the_key_and_the_table_marks_the_team(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from concilium.cli.eval import register

    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.callback()(lambda: None)
    register(app)
    team = tmp_path / "keyed.yaml"
    team.write_text("name: keyed\nstrategy: gvr\nmodel: scripted/keyed\n"
                    "limits: {max_rounds: 2, max_llm_calls: 6}\n"
                    "roles:\n  generator: {}\n  verifier: {check: reference}\n  refiner: {}\n")
    data = write_items(tmp_path / "items.jsonl")
    with scripted.use("keyed", keyed_script()):
        result = CliRunner().invoke(app, ["eval", str(team), "-d", str(data), "-q",
                                          "-o", str(tmp_path / "out"), "--reveal-reference"])
    assert result.exit_code == 0, result.output
    assert f"keyed{SAW_KEY}" in " ".join(result.stdout.split())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["options"]["reveal_reference"] and summary["teams"][0]["accuracy"] == 1.0
