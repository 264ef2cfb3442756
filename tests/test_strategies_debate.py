"""``debate``: simultaneous (Du et al.) and adversarial (MAD) control flow, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from concilium import TeamFileError, load_team
from concilium.agents.providers import scripted
from concilium.teams import spec_from_dict

TASK = "What is 6 * 7?"


def team(roles: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    return {"name": "db", "strategy": {"name": "debate", **options},
            "roles": roles or {"debater": {"temperature": 0.7}}}


def say(table: dict[tuple[str, int], str]) -> scripted.Script:
    """Debater ``node`` in round ``r`` answers ``table[(node, r)]`` (round from the prompt)."""
    def reply(call: scripted.ScriptCall) -> str:
        number = 1 if "Solutions from the other agents" in call.prompt else 0
        return f"Answer: {table[(call.node, number)]}"
    return scripted.Script(rules=[scripted.Rule(reply, role="debater")])


async def test_consensus_in_the_first_round_stops_the_debate() -> None:
    with scripted.use("d1", scripted.Script(default="6 * 7 = 42.\nAnswer: 42")) as script:
        result = await load_team(team(rounds=3, debaters=4), model="scripted/d1").arun(TASK)
    assert script.count("debater") == 4
    assert sorted(c.node for c in script.calls) == [f"debater_{i}" for i in range(1, 5)]
    assert len({c.params["seed"] for c in script.calls}) == 4  # distinct samples
    assert result.stop_reason == "consensus in round 1 on 42" and result.answer == "42"


async def test_debaters_read_each_other_and_reach_consensus_in_round_two() -> None:
    table = {("debater_1", 0): "42", ("debater_2", 0): "41", ("debater_3", 0): "42",
             ("debater_1", 1): "42", ("debater_2", 1): "42", ("debater_3", 1): "42"}
    with scripted.use("d2", say(table)) as script:
        result = await load_team(team(rounds=3), model="scripted/d2").arun(TASK, reference="42")
    assert script.count("debater") == 6
    assert result.stop_reason == "consensus in round 2 on 42"
    second = next(c for c in script.calls if c.node == "debater_2" and c.index >= 3)
    assert "[debater_1]\nAnswer: 42" in second.prompt and "[debater_3]\nAnswer: 42" in second.prompt
    assert "[debater_2]" not in second.prompt
    assert "Your previous solution:\nAnswer: 41" in second.prompt
    assert result.flips == {"changed": 1, "right->wrong": 0, "wrong->right": 1}


async def test_round_limit_then_majority() -> None:
    table = {(f"debater_{i}", r): a for r in (0, 1) for i, a in zip((1, 2, 3), ("7", "42", "42"),
                                                                    strict=True)}
    with scripted.use("d3", say(table)) as script:
        result = await load_team(team(rounds=2), model="scripted/d3").arun(TASK)
    assert script.count("debater") == 6 and result.rounds == 1
    assert result.stop_reason == "round limit (2) reached; majority {'42': 2, '7': 1}"
    assert result.answer == "42"


async def test_the_judge_can_overrule_the_majority() -> None:
    table = {(f"debater_{i}", r): a for r in (0, 1) for i, a in zip((1, 2, 3), ("41", "41", "42"),
                                                                    strict=True)}
    script = say(table)
    script.rules = [*script.rules, scripted.Rule("debater_3 is right.\nAnswer: 42", role="judge")]
    spec = team({"debater": {"temperature": 0.7}, "judge": {}}, rounds=2, final="judge")
    with scripted.use("d4", script):
        result = await load_team(spec, model="scripted/d4").arun(TASK, reference="42")
    assert result.answer == "42" and result.correct is True
    assert result.stop_reason is not None
    assert result.stop_reason.endswith("judge chose 42, overruling the majority (41)")
    assert result.answer_text == "Answer: 42"  # the full solution of the debater it backed
    judge = result.steps[-1]
    assert judge["role"] == "judge" and "[debater_1] (final answer: 41)" in judge["messages"][1][
        "content"]
    assert result.flips["wrong->right"] == 1  # the judge's revision of the majority


async def test_the_judge_is_skipped_on_consensus_and_ignored_when_unreadable() -> None:
    spec = team({"debater": {"temperature": 0.7}, "judge": {}}, rounds=1, debaters=2,
                final="judge")
    with scripted.use("d5", scripted.Script(default="Answer: 42")) as script:
        await load_team(spec, model="scripted/d5").arun(TASK)
    assert script.count("judge") == 0
    table = {("debater_1", 0): "41", ("debater_2", 0): "42"}
    script = say(table)
    script.rules = [*script.rules, scripted.Rule("Hmm, hard to say.", role="judge")]
    with scripted.use("d6", script):
        result = await load_team(spec, model="scripted/d6").arun(TASK)
    assert result.answer == "41" and "judge not understood, majority kept" in result.stop_reason


async def test_heterogeneous_debaters_call_their_own_models() -> None:
    roles = {"smol": {"role": "debater", "model": "scripted/het-a"},
             "big": {"role": "debater", "model": "scripted/het-b"}}
    with scripted.use("het-a", scripted.Script(default="Answer: 41")) as a, \
            scripted.use("het-b", scripted.Script(default="Answer: 42")) as b:
        result = await load_team(team(roles, rounds=2)).arun(TASK)
    assert [c.node for c in a.calls] == ["smol", "smol"]
    assert [c.node for c in b.calls] == ["big", "big"]
    assert {s["model"] for s in result.steps} == {"scripted/het-a", "scripted/het-b"}
    assert "[big]\nAnswer: 42" in a.calls[1].prompt


async def test_parallel_debaters_run_concurrently() -> None:
    """4 debaters x 2 rounds + judge at 0.2 s a call: ~3 latencies, not 9."""
    spec = team({"debater": {"temperature": 0.7}, "judge": {}}, rounds=2, debaters=4,
                final="judge")
    spec["limits"] = {"max_llm_calls": 20}
    answers = iter(range(100))
    from waiting import peak_in_flight

    script = scripted.Script(default=lambda call: f"Answer: {40 + next(answers) % 2}")
    peak = peak_in_flight(script, latency_s=1.0)  # an event, not a stopwatch: a busy machine
    with scripted.use("d7", script):
        result = await load_team(spec, model="scripted/d7").arun(TASK, memory=False)
    assert script.count("debater") == 8 and script.count("judge") == 1
    assert peak() == 4, f"at most {peak()} debaters answered at once, not all 4"
    rounds = [[s for s in result.steps if s["role"] == "debater" and s["round"] == r]
              for r in (0, 1)]
    # Every round-1 call started after every round-0 call ended: rounds depend on each other.
    assert min(s["at"] - s["latency_ms"] / 1000 for s in rounds[1]) >= max(
        s["at"] for s in rounds[0]) - 0.05


async def test_adversarial_moderator_stops_when_one_side_is_clearly_right() -> None:
    roles = {"affirmative": {"role": "debater"}, "negative": {"role": "debater"},
             "moderator": {}, "judge": {}}
    script = scripted.Script(
        {"moderator": ["WINNER: none\nBoth have a point.", "WINNER: negative\n6 * 7 is 42."]},
        rules=[scripted.Rule("6 * 7 = 41.\nAnswer: 41", role="affirmative"),
               scripted.Rule("6 * 7 = 42.\nAnswer: 42", role="negative")])
    with scripted.use("m1", script):
        result = await load_team(team(roles, form="adversarial", rounds=3),
                                 model="scripted/m1").arun(TASK, reference="42")
    assert [s["node"] for s in result.steps] == [
        "affirmative", "negative", "moderator", "affirmative", "negative", "moderator"]
    assert script.count("judge") == 0
    assert result.stop_reason == "moderator: the negative side is clearly right (round 2)"
    assert result.answer == "42"
    negative_first = script.calls[1].prompt
    assert "The affirmative side said:\n6 * 7 = 41." in negative_first and "You disagree" in \
        negative_first
    assert "The negative side said:\n6 * 7 = 42." in script.calls[3].prompt


async def test_adversarial_goes_to_the_judge_at_its_round_limit() -> None:
    roles = {"pro": {"role": "debater"}, "con": {"role": "debater"}}
    script = scripted.Script(
        {"judge": ["The negative side is right.\nAnswer: 42"]},
        rules=[scripted.Rule("WINNER: none", role="moderator"),
               scripted.Rule("Answer: 41", role="pro"), scripted.Rule("Answer: 42", role="con")])
    with scripted.use("m2", script):
        result = await load_team(team(roles, form="adversarial", rounds=2),
                                 model="scripted/m2").arun(TASK)
    assert script.count("moderator") == 2 and script.count("judge") == 1
    assert result.stop_reason == "round limit (2) reached; judge chose 42"
    assert result.answer == "42"


@pytest.mark.parametrize(("spec", "field", "message"), [
    (team({"generator": {}}), "roles.generator", "role kinds: debater, judge"),
    (team({"judge": {}}), "roles", "needs a debater role"),
    (team(final="judge"), "strategy.final", "needs a judge role"),
    (team({"a": {"role": "debater"}, "b": {"role": "debater"}}, debaters=3), "strategy.debaters",
     "the team names 2"),
    (team(form="adversarial"), "roles", "exactly two debater roles"),
    (team({"a": {"role": "debater"}, "b": {"role": "debater"}}, form="adversarial", final="judge"),
     "strategy.final", "simultaneous form only"),
    (team(rounds=10, debaters=8), "strategy.rounds", "limits.max_llm_calls is 50"),
])
def test_bad_debates_are_rejected_at_load_time(spec: dict[str, Any], field: str,
                                               message: str) -> None:
    with pytest.raises(TeamFileError) as caught:
        spec_from_dict(spec)
    assert caught.value.field == field, str(caught.value)
    assert message in caught.value.message


async def test_adversarial_records_a_side_that_changed_its_answer() -> None:
    roles = {"affirmative": {"role": "debater"}, "negative": {"role": "debater"}}
    script = scripted.Script(
        {"affirmative": ["Answer: 41", "You are right.\nAnswer: 42"],
         "moderator": ["WINNER: none", "WINNER: affirmative"]},
        rules=[scripted.Rule("Answer: 42", role="negative")])
    with scripted.use("m3", script):
        result = await load_team(team(roles, form="adversarial", rounds=2),
                                 model="scripted/m3").arun(TASK, reference="42")
    assert result.answer == "42"
    assert result.flips == {"changed": 1, "right->wrong": 0, "wrong->right": 1}
