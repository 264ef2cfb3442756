"""Injected provider faults are retried (honouring Retry-After), then fall back, then reported."""

from __future__ import annotations

import time

import pytest

from concilium import load_team
from concilium.agents.llm import RetryPolicy, chat
from concilium.agents.providers import scripted
from concilium.agents.providers.faulty import Faults, configure
from concilium.errors import ModelError

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]
# A try's timeout: far below a hanging fault's 5 s, far above a healthy call on a busy machine.
FAST = RetryPolicy(attempts=4, initial_backoff_s=0.001, max_backoff_s=0.002, timeout_s=2)


async def test_every_fault_kind_is_survived_by_retries() -> None:
    faults = configure("mixed", Faults(inner="scripted/ok", timeout=0.1, rate_limit=0.1,
                                       server_error=0.1, seed=7, hang_s=5))
    answered = 0
    with scripted.use("ok", scripted.Script(default="Answer: 4")):
        for _ in range(40):
            result = await chat(MESSAGES, model="faulty/mixed", retry=FAST)
            answered += result.text == "Answer: 4"
    assert answered == 40
    assert {"timeout", "rate_limit", "server_error"} <= set(faults.injected)


async def test_retry_after_is_honoured() -> None:
    configure("slowdown", Faults(inner="scripted/ok", rate_limit=1.0, retry_after_s=0.3))
    policy = RetryPolicy(attempts=2, initial_backoff_s=0.0, max_backoff_s=0.0, timeout_s=2)
    start = time.perf_counter()
    with scripted.use("ok", scripted.Script(default="Answer: 4")), pytest.raises(ModelError):
        await chat(MESSAGES, model="faulty/slowdown", retry=policy)
    assert time.perf_counter() - start >= 0.3


async def test_fallback_after_a_model_keeps_failing() -> None:
    configure("dead", Faults(inner="scripted/ok", server_error=1.0))
    with scripted.use("ok", scripted.Script(default="Answer: 4")) as script:
        result = await chat(MESSAGES, model="faulty/dead", fallbacks=["scripted/ok"], retry=FAST)
    assert result.fallback_used and result.attempts == FAST.attempts + 1
    assert script.count() == 1


async def test_malformed_and_empty_replies_reach_the_parser_without_crashing() -> None:
    configure("garbled", Faults(inner="scripted/ok", malformed=0.5, empty=0.5, seed=1))
    team = load_team({"name": "g", "strategy": "single", "roles": {"generator": {}}},
                     model="faulty/garbled")
    result = await team.arun("What is 2 + 2?")
    assert result.status == "ok" and result.answer is None


async def test_team_lists_fallbacks_per_role() -> None:
    configure("down", Faults(inner="scripted/ok", server_error=1.0))
    spec = {"name": "fb", "strategy": "single", "retry": {"attempts": 2, "initial_backoff_s": 0},
            "roles": {"generator": {"model": "faulty/down", "fallbacks": ["scripted/ok"]}}}
    with scripted.use("ok", scripted.Script(default="Answer: 4")):
        result = await load_team(spec).arun("What is 2 + 2?")
    assert result.answer == "4"
    assert result.usage.fallbacks == 1 and result.usage.retries == 2
    assert result.steps[0]["model"] == "scripted/ok"
