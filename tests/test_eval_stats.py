"""Wilson intervals and McNemar's test against values computed by hand (and by SciPy once)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from concilium.eval.stats import compare, mcnemar, percentile, summarize_team, wilson


def test_wilson_known_values() -> None:
    low, high = wilson(5, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.236593, abs=1e-6) and high == pytest.approx(0.763407, abs=1e-6)
    low, high = wilson(0, 10)  # type: ignore[misc]
    assert low == 0.0 and high == pytest.approx(0.277533, abs=1e-6)
    low, high = wilson(10, 10)  # type: ignore[misc]
    assert high == 1.0 and low == pytest.approx(0.722467, abs=1e-6)
    low, high = wilson(81, 263)  # type: ignore[misc]
    assert (low, high) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    assert wilson(0, 0) is None


def test_mcnemar_exact_for_small_counts() -> None:
    assert mcnemar(0, 6).p_value == pytest.approx(2 / 64)  # 2 * (1/2)^6
    assert mcnemar(0, 6).method == "exact"
    assert mcnemar(6, 0).p_value == mcnemar(0, 6).p_value  # two-sided, symmetric
    # b=2, c=8: 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * 56/1024
    assert mcnemar(2, 8).p_value == pytest.approx(2 * 56 / 1024)
    assert mcnemar(5, 5).p_value == 1.0
    assert mcnemar(0, 0).p_value == 1.0


def test_mcnemar_chi_square_for_large_counts() -> None:
    test = mcnemar(10, 30)
    statistic = (abs(10 - 30) - 1) ** 2 / 40
    assert test.method == "chi2"
    assert test.p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2)))
    assert test.p_value == pytest.approx(0.0026, abs=1e-4)  # scipy.stats.chi2.sf(9.025, 1)


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10.0], 95) == 10.0
    assert percentile([0, 10], 95) == pytest.approx(9.5)
    assert percentile([], 50) is None


def test_compare_pairs_teams_on_shared_items() -> None:
    outcomes = {
        "a": {"1": True, "2": True, "3": False, "4": True},
        "b": {"1": False, "2": True, "3": False},
        "c": {"1": True, "2": True, "3": True, "4": True},
    }
    rows = {(r["a"], r["b"]): r for r in compare(outcomes)}
    assert set(rows) == {("a", "b"), ("a", "c"), ("b", "c")}
    ab = rows[("a", "b")]
    assert (ab["items"], ab["a_only"], ab["b_only"], ab["significant"]) == (3, 1, 0, False)
    assert rows[("b", "c")]["b_only"] == 2


def test_summary_counts_failures_as_wrong_and_sums_flips() -> None:
    records = [
        {"correct": True, "status": "ok", "llm_calls": 2, "total_tokens": 100, "cost": 0.01,
         "wall_ms": 100.0, "revisions": 1, "flips": {"wrong->right": 1, "changed": 1}},
        {"correct": False, "status": "ok", "llm_calls": 4, "total_tokens": 300, "cost": 0.03,
         "wall_ms": 300.0, "revisions": 2, "flips": {"right->wrong": 1, "changed": 1}},
        {"correct": False, "status": "timeout", "llm_calls": 0, "total_tokens": 0, "cost": 0.0,
         "wall_ms": 500.0, "revisions": 0, "flips": {}},
    ]
    summary = summarize_team(records, selected=5)
    assert summary["accuracy"] == pytest.approx(1 / 3)
    assert (summary["items"], summary["done"], summary["correct"]) == (5, 3, 1)
    assert summary["mean_llm_calls"] == 2.0 and summary["mean_tokens"] == pytest.approx(400 / 3)
    assert summary["total_cost"] == pytest.approx(0.04)
    assert summary["latency_ms"]["p50"] == 300.0
    assert summary["flips"] == {"right->wrong": 1, "wrong->right": 1, "changed": 2}
    assert summary["revisions"] == 3
    assert summary["status"] == {"ok": 2, "timeout": 1}


def test_an_outage_is_counted_apart_not_as_wrong_answers(tmp_path: Path) -> None:
    """Issue #10.3: team B's model is down for 4 of 12 items (every try, every re-queue).

    Before: B scored 6/12 = 50 % and McNemar called A better (6 discordant items,
    p = 0.03). Now: B is 6/8 = 75 % over what it completed, 4 failed, and the
    paired test uses only the 8 items both teams completed (2 discordant, p = 0.5).
    """
    from concilium.agents.breaker import BreakerPolicy
    from concilium.agents.providers import scripted
    from concilium.eval.datasets import load_dataset
    from concilium.eval.report import TEAM_HEADERS, team_rows, write_report
    from concilium.eval.runner import EvalOptions, Evaluation
    from concilium.team import load_team
    from concilium.tools.calculator import evaluate, find_expression

    data = load_dataset("arith:12:5")
    down = {item.question for item in data.items[:4]}
    wrong = {item.question for item in data.items[4:6]}

    def right(call: scripted.ScriptCall) -> str:
        return f"Answer: {evaluate(find_expression(call.prompt) or '0'):g}"

    def flaky(call: scripted.ScriptCall) -> str:
        if any(q in call.text for q in down):
            raise ConnectionError("the provider is unreachable")  # transient: retried, requeued
        if any(q in call.text for q in wrong):
            return "Answer: -1"
        return right(call)

    def team(name: str, model: str) -> Any:
        return load_team({"name": name, "strategy": "single", "model": model,
                          "retry": {"attempts": 2, "initial_backoff_s": 0.0},
                          "roles": {"generator": {}}})

    # The breaker stays closed: this test counts an outage of some items, and with a
    # breaker a healthy item could fail too whenever it waited behind a down item's
    # failing probe, which depends on how the tasks interleave (seen under two busy
    # loops: 7 completed, 5 failed). The breaker has tests of its own.
    options = EvalOptions(requeue_rounds=2, requeue_backoff_s=0.001,
                          breaker=BreakerPolicy(threshold=1_000_000, cooldown_s=0.01))
    with scripted.use("right", scripted.Script(default=right)), \
            scripted.use("flaky", scripted.Script(default=flaky)) as script:
        evaluation = Evaluation([team("a", "scripted/right"), team("b", "scripted/flaky")],
                                data, tmp_path, options)
        asyncio.run(evaluation.run())
    summary = evaluation.write_summary()
    a, b = summary["teams"]
    assert (a["completed"], a["failed"], a["correct"], a["accuracy"]) == (12, 0, 12, 1.0)
    assert (b["completed"], b["failed"], b["correct"]) == (8, 4, 6)
    assert b["accuracy"] == 0.75 and b["accuracy_ci95"] == list(wilson(6, 8))  # type: ignore[arg-type]
    assert b["status"] == {"ok": 8, "failed": 4} and b["requeued"] == 4 * 2
    # each of the 4 items: 1 run + 2 re-queues of 2 tries each, fewer once the breaker opens
    assert 5 <= sum(1 for c in script.calls if any(q in c.text for q in down)) <= 4 * 3 * 2
    [pair] = summary["comparisons"]
    assert (pair["items"], pair["a_only"], pair["b_only"]) == (8, 2, 0)
    assert pair["p_value"] == 0.5 and not pair["significant"]

    row = dict(zip(TEAM_HEADERS, team_rows(summary)[1], strict=True))
    assert row["failed"] == "4" and row["n"] == "8/12" and row["accuracy [95% CI]"].startswith(
        "75.0%")
    page = write_report(summary, evaluation.records(), tmp_path).path.read_text()
    assert "| wrong→right | failed |" in page  # the column is there
    assert "over the completed items" in page and "both teams completed" in page
