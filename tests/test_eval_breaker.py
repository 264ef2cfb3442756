"""The per-model circuit breaker, through the real model door and the faulty provider.

A model that keeps failing is paused for a cool-down shared by every call in
flight: calls skip to their fallbacks, or wait it out without spending attempts;
after it one probe tests the model. The evaluation's progress bar says so.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from concilium.agents import breaker
from concilium.agents.breaker import BreakerPolicy
from concilium.agents.llm import RetryPolicy, chat
from concilium.agents.providers import faulty, scripted
from concilium.cli.eval import register
from concilium.errors import ModelError

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]
FAST = RetryPolicy(attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002, timeout_s=2)


def make_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.callback()(lambda: None)
    register(app)
    return app


async def wait_for(condition: object, deadline_s: float = 20.0) -> None:
    """Wait until ``condition()`` holds (an event, with a deadline: never a fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.005)


async def test_a_dead_model_is_paused_and_its_callers_go_to_the_fallback() -> None:
    """Without the breaker 8 callers x 3 attempts make 24 calls into a dead model."""
    breaker.configure(BreakerPolicy(threshold=3, cooldown_s=30))
    dead = faulty.configure("dead8", faulty.Faults(inner="scripted/ok", server_error=1.0))
    with scripted.use("ok", scripted.Script(default="Answer: 4")) as script:
        results = await asyncio.gather(*(
            chat(MESSAGES, model="faulty/dead8", fallbacks=["scripted/ok"], retry=FAST)
            for _ in range(8)))
    assert all(r.text == "Answer: 4" and r.fallback_used for r in results)
    assert script.count() == 8
    assert dead.injected["server_error"] <= 8  # at most the first wave, in flight at once
    skipped = [r for r in results if any("CircuitOpen" in e for e in r.errors)]
    assert skipped, [r.errors for r in results]
    [(model, left)] = breaker.cooling()
    assert model == "faulty/dead8" and 25 < left <= 30

    # a later call does not touch the dead model at all while it cools down
    with scripted.use("ok", scripted.Script(default="Answer: 4")):
        later = await chat(MESSAGES, model="faulty/dead8", fallbacks=["scripted/ok"],
                           retry=FAST)
    assert later.attempts == 1 and later.fallback_used
    assert dead.injected["server_error"] <= 8


async def test_retry_after_sets_a_longer_cool_down() -> None:
    breaker.configure(BreakerPolicy(threshold=1, cooldown_s=0.01))
    faulty.configure("limited", faulty.Faults(inner="scripted/ok", rate_limit=1.0,
                                              retry_after_s=20))
    with scripted.use("ok", scripted.Script(default="Answer: 4")):
        result = await chat(MESSAGES, model="faulty/limited", fallbacks=["scripted/ok"],
                            retry=RetryPolicy(attempts=1, timeout_s=2))
    assert result.fallback_used
    [(model, left)] = breaker.cooling()
    assert model == "faulty/limited" and 15 < left <= 20
    assert breaker.registry().get("faulty/limited").state() == "open"


async def test_with_no_fallback_a_call_waits_the_cool_down_and_a_probe_closes_it() -> None:
    breaker.configure(BreakerPolicy(threshold=2, cooldown_s=0.3))
    faulty.configure("recovering", faulty.Faults(inner="scripted/ok", server_error=1.0))
    state = breaker.registry().get("faulty/recovering")
    with scripted.use("ok", scripted.Script(default="Answer: 4")):
        start = time.monotonic()
        call = asyncio.create_task(chat(MESSAGES, model="faulty/recovering", retry=FAST))
        await wait_for(lambda: state.state() == "open")
        faulty.configure("recovering", faulty.Faults(inner="scripted/ok"))  # it comes back
        result = await call
    assert result.text == "Answer: 4"
    # two failures opened it; the third attempt waited the cool-down, then probed
    assert result.attempts == 3 and time.monotonic() - start >= 0.3
    assert state.state() == "closed" and breaker.cooling() == []


async def test_one_probe_after_the_cool_down_and_its_waiters_give_up_when_it_fails() -> None:
    breaker.configure(BreakerPolicy(threshold=1, cooldown_s=0.2))
    dead = faulty.configure("gone", faulty.Faults(inner="scripted/ok", server_error=1.0))
    one = RetryPolicy(attempts=1, timeout_s=2)
    with pytest.raises(ModelError, match="injected server error"):
        await chat(MESSAGES, model="faulty/gone", retry=one)
    assert dead.injected["server_error"] == 1
    outcomes = await asyncio.gather(*(chat(MESSAGES, model="faulty/gone", retry=one)
                                      for _ in range(5)), return_exceptions=True)
    assert all(isinstance(o, ModelError) for o in outcomes)
    assert dead.injected["server_error"] == 2  # one probe, not five calls
    gave_up = [str(o) for o in outcomes if "CircuitOpen" in str(o)]
    assert len(gave_up) == 4, outcomes


def test_the_progress_bar_says_which_model_is_cooling_down(tmp_path: Path) -> None:
    team = tmp_path / "paused.yaml"
    team.write_text("name: paused\nstrategy: single\nretry:\n  attempts: 1\n"
                    "roles:\n  generator:\n    model: faulty/dead\n"
                    "    fallbacks: [scripted/spare]\n")
    faulty.configure("dead", faulty.Faults(inner="scripted/spare", server_error=1.0))
    with scripted.use("spare", scripted.Script(default="Answer: 1")):
        result = CliRunner().invoke(make_app(), [
            "eval", str(team), "-d", "arith:8", "-c", "1", "-o", str(tmp_path / "out"),
            "--cooldown", "60"])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stderr.split())  # the bar may wrap at the console's width
    assert "faulty/dead cooling down 60 s" in shown or "faulty/dead cooling down 59 s" in shown, (
        result.stderr)
