"""Judge grading: position bias is cancelled, replies are parsed, judging resumes.

Teams and judges are real teams on the scripted model (so every judgement is a real
run: ledger, limits); the parser is also checked on replies recorded from the default
model (``tests/corpus/judge.jsonl``, recorded by ``tests/judge_corpus_record.py``).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.cli.app import app
from concilium.eval.datasets import Dataset, load_dataset
from concilium.eval.judge import (
    JUDGEMENTS,
    judge_evaluation,
    load_judge,
    parse_pair,
    parse_point,
)
from concilium.eval.runner import EvalOptions, Evaluation
from concilium.memory.store import Memory

CORPUS = Path(__file__).parent / "corpus" / "judge.jsonl"
ITEMS = [{"question": f"What is {n} + {n}?", "answer": str(2 * n)} for n in (1, 2, 3)]


def dataset(tmp_path: Path) -> Dataset:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    return load_dataset(path)


def single(name: str, model: str) -> Any:
    return load_team({"name": name, "strategy": "single", "roles": {"generator": {}}},
                     model=model)


async def two_teams(tmp_path: Path) -> tuple[Dataset, list[dict[str, Any]], Path]:
    """Team ``right`` answers every item right, team ``off`` one too high."""
    data = dataset(tmp_path)

    def right(call: scripted.ScriptCall) -> str:
        n = int(re.search(r"What is (\d+)", call.prompt).group(1))  # type: ignore[union-attr]
        return f"{n} + {n} = {2 * n}.\nAnswer: {2 * n}"

    def off(call: scripted.ScriptCall) -> str:
        n = int(re.search(r"What is (\d+)", call.prompt).group(1))  # type: ignore[union-attr]
        return f"I guess.\nAnswer: {2 * n + 1}"

    out = tmp_path / "eval"
    with scripted.use("j-right", scripted.Script(default=right)), \
            scripted.use("j-off", scripted.Script(default=off)):
        evaluation = Evaluation([single("right", "scripted/j-right"),
                                 single("off", "scripted/j-off")], data, out, EvalOptions())
        await evaluation.run()
    records = [r for rows in evaluation.records().values() for r in rows]
    return data, records, out


def prefers_right(call: scripted.ScriptCall) -> str:
    """A consistent judge: picks whichever shown answer is correct, whatever its position."""
    a = re.search(r"\[Answer A\]\n.*?Answer: (\d+)", call.prompt, re.S)
    n = int(re.search(r"What is (\d+)", call.prompt).group(1))  # type: ignore[union-attr]
    if "[Answer A]" in call.prompt:
        return "A is right.\nVERDICT: A" if a and int(a.group(1)) == 2 * n else \
            "B is right.\nVERDICT: B"
    return "It checks out.\nVERDICT: PASS"


async def test_a_judge_that_always_says_a_yields_ties_not_wins(tmp_path: Path) -> None:
    data, records, out = await two_teams(tmp_path)
    with scripted.use("always-a", scripted.Script(default="I pick the first.\nVERDICT: A")):
        summary = await judge_evaluation(load_judge("scripted/always-a"), data.items, records,
                                         ["right", "off"], out)
    (pair,) = summary["pairs"]
    assert (pair["a_wins"], pair["b_wins"], pair["ties"]) == (0, 0, 3)
    assert summary["order_agreement"] == {"agreed": 0, "pairs": 3, "rate": 0.0}
    # "VERDICT: A" on a pointwise question is no verdict at all.
    assert all(t["unparsed"] == 3 for t in summary["teams"])


async def test_a_consistent_judge_gives_wins_with_wilson_intervals(tmp_path: Path) -> None:
    data, records, out = await two_teams(tmp_path)
    with scripted.use("fair", scripted.Script(default=prefers_right)) as script:
        summary = await judge_evaluation(load_judge("scripted/fair"), data.items, records,
                                         ["right", "off"], out)
    # 3 items x 2 teams pointwise + 3 items x 2 orders pairwise
    assert script.count() == 12 and summary["judgements"] == 12 and summary["complete"]
    (pair,) = summary["pairs"]
    assert (pair["a"], pair["a_wins"], pair["b_wins"], pair["ties"]) == ("right", 3, 0, 0)
    assert pair["a_win_rate"] == 1.0 and pair["a_ci95"][0] == pytest.approx(0.4385, abs=1e-3)
    assert summary["order_agreement"]["rate"] == 1.0
    # The judge passes everything; exact match passes 'right' (3) and fails 'off' (3).
    assert summary["exact_agreement"] == {"agreed": 3, "items": 6, "rate": 0.5}
    assert summary["models"] == ["scripted/fair"]
    # Every judgement is a run of its own in the ledger.
    runs = {json.loads(x)["run_id"] for x in (out / JUDGEMENTS).read_text().splitlines()}
    from concilium.memory.ledger import find_run

    db = Memory.open(redis_url=False).db
    assert len(runs) == 12 and all(find_run(db, r).team == "judge" for r in runs)  # type: ignore


async def test_judging_resumes_after_an_interrupt(tmp_path: Path) -> None:
    data, records, out = await two_teams(tmp_path)
    two = asyncio.Event()

    def seen(_row: dict[str, Any]) -> None:
        if sum(1 for _ in (out / JUDGEMENTS).open()) >= 2:
            two.set()

    with scripted.use("slow", scripted.Script(default=prefers_right, latency_s=0.05)):
        task = asyncio.create_task(judge_evaluation(
            load_judge("scripted/slow"), data.items, records, ["right", "off"], out,
            on_judgement=seen))
        await asyncio.wait_for(two.wait(), timeout=60)
        task.cancel()  # what Ctrl-C does to asyncio.run's main task
        with pytest.raises(asyncio.CancelledError):
            await task
    kept = (out / JUDGEMENTS).read_text().splitlines()
    assert 2 <= len(kept) < 12
    with scripted.use("slow", scripted.Script(default=prefers_right)) as script:
        summary = await judge_evaluation(load_judge("scripted/slow"), data.items, records,
                                         ["right", "off"], out)
    assert script.count() == 12 - len(kept)  # nothing judged twice
    assert summary["judgements"] == 12 and summary["complete"]
    keys = [json.loads(x)["key"] for x in (out / JUDGEMENTS).read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 12


def corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines()]


def test_parsing_the_default_models_real_replies() -> None:
    """Each recorded reply parses to what a person reads in it (its hand label)."""
    rows = corpus()
    assert len(rows) >= 8
    for row in rows:
        got: Any = parse_point(row["reply"]) if row["mode"] == "point" else parse_pair(
            row["reply"])
        if row["mode"] == "point" and got is not None:
            got = "pass" if got else "fail"
        assert got == row["label"], (row["reply"][-300:], row["label"])


@pytest.mark.parametrize(("reply", "verdict"), [
    ("Let me think. VERDICT: PASS", True),
    ("The instruction says VERDICT: PASS or VERDICT: FAIL.\n...\nVERDICT: **FAIL**", False),
    ("The answer is not correct.", False),
    ("So the answer is correct.", True),
    ("I cannot tell.", None),
])
def test_pointwise_parser_cases(reply: str, verdict: bool | None) -> None:
    assert parse_point(reply) is verdict


@pytest.mark.parametrize(("reply", "verdict"), [
    ("VERDICT: B", "B"), ("verdict - tie", "TIE"), ("Answer B is better because", "B"),
    ("Both are fine.", None), ("VERDICT: Answer A", "A"),
    # an echoed instruction is no decision, unless the reply ends on one
    ("A, VERDICT: A\nB, or VERDICT: TIE", None),
    ("End with VERDICT: A, VERDICT: B, or VERDICT: TIE.\nB is clearer.\nVERDICT: B", "B"),
])
def test_pairwise_parser_cases(reply: str, verdict: str | None) -> None:
    assert parse_pair(reply) == verdict


def test_cli_eval_with_a_judge(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    teams = []
    for name in ("same-a", "same-b"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "strategy": "single",
                                        "model": f"scripted/{name}",
                                        "roles": {"generator": {}}}))
        teams.append(str(path))
    runner = CliRunner()
    with scripted.use("same-a", scripted.Script(default="Answer: 2")), \
            scripted.use("same-b", scripted.Script(default="Answer: 3")), \
            scripted.use("cli-judge", scripted.Script(default="VERDICT: A")):
        result = runner.invoke(app, ["eval", *teams, "--dataset", str(data), "--out",
                                     str(tmp_path / "o"), "--grader", "judge", "--judge",
                                     "scripted/cli-judge", "-q"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "o" / "judge.md").read_text()
    assert "## Judge: scripted/cli-judge (model scripted/cli-judge)" in page
    assert "| same-a | same-b | 3 | 0 | 0 | 3 |" in page
    assert "The two orders agreed on 0/3 (0%) pairs." in page
    assert "Judge:" in (tmp_path / "o" / "report.md").read_text()
    result = runner.invoke(app, ["eval", *teams, "--dataset", str(data), "--grader", "judge"])
    assert result.exit_code == 2 and "--grader judge needs --judge" in result.output
