"""``self_consistency``: parallel samples, majority vote, adaptive early stop, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from concilium import TeamFileError, load_team
from concilium.agents.providers import scripted
from concilium.graphs.votes import leader_confidence, tally
from concilium.teams import spec_from_dict

TASK = "What is 6 * 7?"


def team(**options: Any) -> dict[str, Any]:
    return {"name": "sc", "strategy": {"name": "self_consistency", **options},
            "roles": {"generator": {"temperature": 0.7}}, "limits": {"max_llm_calls": 20}}


def by_seed(answers: list[str]) -> scripted.Script:
    """Sample ``i`` (seed ``i``) answers ``answers[i]``, whatever order the calls arrive in."""
    return scripted.Script(default=lambda call: f"Answer: {answers[call.params['seed']]}")


async def test_fixed_mode_draws_every_sample_and_takes_the_majority() -> None:
    with scripted.use("sc1", by_seed(["41", "42", "42", "40", "42"])) as script:
        result = await load_team(team(samples=5), model="scripted/sc1").arun(TASK, reference="42")
    assert script.count("generator") == 5
    assert sorted(c.params["seed"] for c in script.calls) == [0, 1, 2, 3, 4]
    assert {c.params["temperature"] for c in script.calls} == {0.7}
    assert result.answer == "42" and result.correct is True
    assert result.stop_reason == "all 5 samples drawn; 42 leads 3-1"
    vote = result.steps[-1]
    assert vote["role"] == "vote" and vote["parsed"]["votes"] == {"42": 3, "41": 1, "40": 1}
    # The vote turned the first sample's wrong answer into the right one.
    assert result.flips == {"changed": 1, "right->wrong": 0, "wrong->right": 1}


@pytest.mark.parametrize(("answers", "winner"), [(["9", "7", "7", "9"], "9"),
                                                  (["7", "9", "9", "7"], "7")])
async def test_ties_go_to_the_answer_sampled_first(answers: list[str], winner: str) -> None:
    with scripted.use("sc2", by_seed(answers)):
        result = await load_team(team(samples=4), model="scripted/sc2").arun(TASK)
    assert result.answer == winner


async def test_samples_without_an_answer_abstain() -> None:
    with scripted.use("sc3", by_seed(["I do not know", "12", "I do not know"])):
        result = await load_team(team(samples=3), model="scripted/sc3").arun(TASK)
    assert result.answer == "12"


async def test_adaptive_stops_once_the_leader_cannot_be_overtaken() -> None:
    with scripted.use("sc4", by_seed(["42"] * 8)) as script:
        result = await load_team(team(samples=8, adaptive=True, batch=2),
                                 model="scripted/sc4").arun(TASK)
    # After 6 votes 6-0 with 2 samples left, nothing can change the outcome.
    assert script.count("generator") == 6
    assert result.stop_reason == "vote decided after 6 of 8 samples (2 saved): 42 leads 6-0"
    assert [s["round"] for s in result.steps if s["role"] == "generator"] == [0, 0, 1, 1, 2, 2]
    assert [s["role"] for s in result.steps].count("vote") == 3
    # The saving is also on the result, machine-readable, for reports and evaluations.
    assert result.report["samples_used"] == 6 and result.report["samples_saved"] == 2
    assert result.report["samples_budget"] == 8


async def test_adaptive_confidence_stops_earlier_on_a_clear_majority() -> None:
    with scripted.use("sc5", by_seed(["42"] * 8)) as script:
        result = await load_team(team(samples=8, adaptive=True, batch=2, confidence=0.95),
                                 model="scripted/sc5").arun(TASK)
    assert script.count("generator") == 4  # 4-0: P(leader is the majority) = 31/32
    assert "(4 saved)" in (result.stop_reason or "")


async def test_adaptive_does_not_stop_early_on_a_split() -> None:
    with scripted.use("sc6", by_seed(["41", "42"] * 4)) as script:
        result = await load_team(team(samples=8, adaptive=True, batch=2, confidence=0.95),
                                 model="scripted/sc6").arun(TASK)
    assert script.count("generator") == 8
    assert result.stop_reason == "all 8 samples drawn; 41 leads 4-4"


async def test_samples_run_concurrently() -> None:
    from waiting import peak_in_flight

    script = scripted.Script(default="Answer: 42")
    peak = peak_in_flight(script, latency_s=1.0)  # an event, not a stopwatch: a busy machine
    with scripted.use("sc7", script):
        result = await load_team(team(samples=6), model="scripted/sc7").arun(TASK, memory=False)
    assert result.usage.llm_calls == 6
    assert peak() == 6, f"at most {peak()} of 6 samples were drawn at once"


def test_vote_helpers() -> None:
    spec = spec_from_dict(team())
    assert tally(spec, ["1,300", "1300.0", None, "12"]) == [("1,300", 2), ("12", 1)]
    assert leader_confidence([("a", 4)]) == pytest.approx(31 / 32)
    assert leader_confidence([("a", 2), ("b", 2)]) == pytest.approx(0.5)


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"roles": {"generator": {}}}, "roles.generator.temperature", "temperature > 0"),
    ({"strategy": {"name": "self_consistency", "samples": 30}}, "strategy.samples",
     "limits.max_llm_calls is 20"),
    ({"strategy": {"name": "self_consistency", "confidence": 0.9}}, "strategy.confidence",
     "adaptive"),
    ({"strategy": {"name": "self_consistency", "samples": 0}}, "strategy.samples",
     "greater than or equal to 1"),
])
def test_bad_options_are_rejected_at_load_time(change: dict[str, Any], field: str,
                                               message: str) -> None:
    with pytest.raises(TeamFileError) as caught:
        spec_from_dict({**team(), **change})
    assert caught.value.field == field and message in caught.value.message
