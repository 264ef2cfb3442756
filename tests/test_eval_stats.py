"""Wilson intervals and McNemar's test against values computed by hand (and by SciPy once)."""

from __future__ import annotations

import math

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
