"""With 30% injected provider faults an evaluation still completes every item."""

from __future__ import annotations

import asyncio
from pathlib import Path

from concilium import load_team
from concilium.agents.breaker import BreakerPolicy
from concilium.agents.providers import faulty, scripted
from concilium.eval.datasets import load_dataset
from concilium.eval.runner import EvalOptions, Evaluation
from concilium.tools.calculator import evaluate as calc


def solver(call: scripted.ScriptCall) -> str:
    """A perfect arithmetic model: it evaluates the task's expression."""
    from concilium.tools.calculator import find_expression

    expression = find_expression(call.prompt) or "0"
    return f"{expression} = {calc(expression):g}\nAnswer: {calc(expression):g}"


def test_thirty_percent_faults_fifty_items_all_complete(tmp_path: Path) -> None:
    faults = faulty.configure("storm", faulty.Faults(
        inner="scripted/solver", timeout=0.06, rate_limit=0.08, server_error=0.08,
        malformed=0.04, empty=0.04, seed=3, hang_s=5.0))
    spec = {"name": "stormy", "strategy": "single",
            "retry": {"attempts": 4, "initial_backoff_s": 0.001, "max_backoff_s": 0.005,
                      "timeout_s": 1.0},
            "roles": {"generator": {"model": "faulty/storm", "fallbacks": ["scripted/solver"]}}}
    data = load_dataset("arith:50:7")
    with scripted.use("solver", scripted.Script(default=solver)):
        evaluation = Evaluation([load_team(spec)], data, tmp_path,
                                EvalOptions(concurrency=8, item_timeout_s=30))
        asyncio.run(evaluation.run())
        summary = evaluation.write_summary()
    [team] = summary["teams"]
    assert summary["complete"] and team["done"] == 50
    assert team["status"] == {"ok": 50}
    # Transient faults were retried; malformed and empty replies reached the grader as wrong.
    transient = sum(faults.injected[k] for k in ("timeout", "rate_limit", "server_error"))
    # (a slow machine may time out a healthy call too, so at least one retry per fault)
    assert transient > 0 and team["retries"] >= transient
    garbled = faults.injected["malformed"] + faults.injected["empty"]
    assert team["correct"] == 50 - garbled
    assert sum(faults.injected.values()) >= 10  # about 30% of ~55 calls


def always_right_team(model: str, **retry: float) -> dict:
    """A single-call team on ``model`` with the default number of tries and tiny waits."""
    policy = {"attempts": 3, "initial_backoff_s": 0.001, "max_backoff_s": 0.002,
              "timeout_s": 0.3, **retry}
    return {"name": "steady", "strategy": "single", "retry": policy,
            "roles": {"generator": {"model": model}}}


def test_forty_items_at_thirty_percent_faults_all_complete_and_all_right(
        tmp_path: Path) -> None:
    """Issue #10.3: before re-queueing, seed 9 left 3 items `failed` (3 faults in a row each)
    and the summary called a model that is always right 92.5 % accurate."""
    faults = faulty.configure("flaky30", faulty.Faults(
        inner="scripted/solver", timeout=0.1, rate_limit=0.1, server_error=0.1, seed=9,
        hang_s=5.0))
    data = load_dataset("arith:40:3")
    options = EvalOptions(concurrency=1, requeue_backoff_s=0.001,
                          breaker=BreakerPolicy(cooldown_s=0.01))
    with scripted.use("solver", scripted.Script(default=solver)):
        evaluation = Evaluation([load_team(always_right_team("faulty/flaky30"))], data,
                                tmp_path, options)
        asyncio.run(evaluation.run())
        summary = evaluation.write_summary()
    [team] = summary["teams"]
    assert team["status"] == {"ok": 40}, team["status"]
    assert team["completed"] == 40 and team["failed"] == 0
    assert team["accuracy"] == 1.0
    assert team["requeued"] >= 3  # the three items that met three faults in a row
    assert sum(faults.injected.values()) >= 12


def test_forty_items_at_thirty_percent_faults_eight_in_flight(tmp_path: Path) -> None:
    """The same storm with eight items in flight: the breaker and re-queues share the load."""
    faulty.configure("flaky30x8", faulty.Faults(
        inner="scripted/solver", timeout=0.1, rate_limit=0.1, server_error=0.1, seed=4,
        hang_s=5.0))
    options = EvalOptions(concurrency=8, requeue_rounds=5, requeue_backoff_s=0.001,
                          breaker=BreakerPolicy(cooldown_s=0.01))
    with scripted.use("solver", scripted.Script(default=solver)):
        evaluation = Evaluation([load_team(always_right_team("faulty/flaky30x8"))],
                                load_dataset("arith:40:4"), tmp_path, options)
        asyncio.run(evaluation.run())
    [team] = evaluation.write_summary()["teams"]
    assert team["status"] == {"ok": 40} and team["accuracy"] == 1.0 and team["failed"] == 0
