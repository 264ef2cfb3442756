"""The critic's and verifier's parsers on real replies of the default local model.

``tests/corpus/*.jsonl`` holds what ``local/smollm2`` really answered to the critic
and verifier prompts (recorded by ``tests/corpus/record.py``) with the parse a
person reads in each reply, labelled by hand. ``parsed: null`` marks a reply
where either reading is fair; the decision itself is still asserted. The hand-
written replies below are in the style of larger models (bullets, markers, JSON),
which the tiny model never produced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concilium import load_team
from concilium.agents.answers import extract
from concilium.agents.llm import litellm_module
from concilium.agents.providers import scripted
from concilium.agents.roles.critic import parse_critique
from concilium.agents.roles.verifier import parse_verdict

CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus(role: str) -> list[Any]:
    rows = [json.loads(line) for line in (CORPUS / f"{role}.jsonl").read_text().splitlines()]
    return [pytest.param(r, id=f"{r['prompt']}-{i}") for i, r in enumerate(rows)]


@pytest.mark.parametrize("row", corpus("verifier"))
def test_verifier_reads_what_the_local_model_meant(row: dict[str, Any]) -> None:
    verdict = parse_verdict(row["output"], extract(row["answer"]))
    assert verdict.accepted is row["expected"]["accepted"], row["output"]
    if row["expected"]["parsed"] is not None:
        assert verdict.parsed is row["expected"]["parsed"], row["output"]


@pytest.mark.parametrize("row", corpus("critic"))
def test_critic_reads_what_the_local_model_meant(row: dict[str, Any]) -> None:
    found = parse_critique(row["output"])
    assert found.should_change is row["expected"]["should_change"], row["output"]
    if row["expected"]["parsed"] is not None:
        assert found.parsed is row["expected"]["parsed"], row["output"]


def test_the_corpus_is_labelled_and_real() -> None:
    rows = [json.loads(line) for role in ("critic", "verifier")
            for line in (CORPUS / f"{role}.jsonl").read_text().splitlines()]
    assert len(rows) >= 40 and all(r["expected"] is not None for r in rows)
    assert {r["prompt"] for r in rows} == {"packaged", "v0", "variant"}
    assert {r["candidate_correct"] for r in rows} == {True, False}


@pytest.mark.parametrize(("reply", "issues"), [
    ("- step 1 is correct\n- the final answer is right", []),
    ("1. The multiplication is fine and correct.\n2. There is no mistake in the sum.", []),
    ("- Step 1 is correct.\n- Step 2 is wrong: 4 * 3 is 12, not 7.",
     ["Step 2 is wrong: 4 * 3 is 12, not 7."]),
    ("- 4 * 3 = 7 should be 12", ["4 * 3 = 7 should be 12"]),
    ("ISSUE: 4 * 3 is 12, not 7\nISSUE: so the total is 28", ["4 * 3 is 12, not 7",
                                                              "so the total is 28"]),
    ("ISSUE: none", []),
    ('ISSUE: "<the mistake>"', []),
    ("NO ISSUES", []),
    ("No issues found. Step 2 is correct.", []),
    ("There are no errors in this solution.", []),
    ('{"issues": []}', []),
    ('{"issues": ["4 * 3 is 12, not 7"]}', ["4 * 3 is 12, not 7"]),
    ('```json\n{"issues": ["the sum is 28"]}\n```', ["the sum is 28"]),
])
def test_critic_counts_only_stated_faults(reply: str, issues: list[str]) -> None:
    found = parse_critique(reply)
    assert found.issues == issues and found.should_change is bool(issues) and found.parsed


@pytest.mark.parametrize(("reply", "accepted"), [
    ("There is no error in the solution.", True),
    ("The solution has no mistakes; the answer is right.", True),
    ("Nothing is wrong here.", True),
    ("The answer is not incorrect.", True),
    ("VERDICT: correct", True),
    ("VERDICT: The answer is correct.", True),
    ("**Verdict:** accepted", True),
    ("VERDICT: incorrect\nREASON: 4 * 3 is 12, not 7", False),
    ("VERDICT: not correct", False),
    ("Yes. 4 * 3 = 12 and 16 + 12 = 28.", True),
    ("No. There is an error in step 2.", False),
    ("No errors; the answer is right.", True),
    ("No problem, the answer is correct.", True),
    ('{"correct": false, "reason": "4 * 3 is 12, not 7"}', False),
    ('```json\n{"correct": true, "reason": "checks out"}\n```', True),
])
def test_verifier_reads_negations_and_markers(reply: str, accepted: bool) -> None:
    verdict = parse_verdict(reply, "28")
    assert verdict.accepted is accepted and verdict.parsed, reply
    assert bool(verdict.feedback) is not accepted


def test_verifier_feedback_keeps_the_reason() -> None:
    verdict = parse_verdict("VERDICT: incorrect\nREASON: 4 * 3 is 12, not 7", "23")
    assert "4 * 3 is 12, not 7" in verdict.feedback
    stated = parse_verdict("The correct answer is actually 28.", "23")
    assert not stated.accepted and "28" in stated.feedback


def test_unreadable_replies_keep_the_answer() -> None:
    assert parse_verdict("I like turtles.", "28").model_dump(include={"accepted", "parsed"}) == {
        "accepted": True, "parsed": False}
    assert parse_critique("I like turtles.").model_dump() == {
        "issues": [], "should_change": False, "parsed": False}
    assert parse_verdict("", None).parsed is False and parse_critique("").parsed is False


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(
    ["ISSUE:", "VERDICT:", "no ", "not ", "error", "correct", "incorrect", "answer is ", "yes",
     "NO ISSUES", '"issues"', "true", "false", "- ", "\n", "{", "}", "[", "]", '"correct":',
     ":", ",", " ", "7", "28", ".", "<x>"]), max_size=40).map("".join) | st.text(max_size=200))
def test_parsers_never_crash(reply: str) -> None:
    verdict = parse_verdict(reply, "28")
    found = parse_critique(reply)
    assert isinstance(verdict.accepted, bool) and len(found.issues) <= 10
    assert found.should_change is bool(found.issues)


# ------------------------------------------------------------- structured output


def schema_model(name: str) -> str:
    """A scripted model that litellm's table says honours JSON schemas."""
    model = f"scripted/{name}"
    litellm_module().register_model({model: {"supports_response_schema": True,
                                             "litellm_provider": "scripted", "mode": "chat"}})
    return model


async def test_models_that_support_schemas_are_asked_for_json() -> None:
    team = load_team({"name": "j", "strategy": "gvr", "roles": {
        "generator": {}, "verifier": {"check": "llm"}, "refiner": {}}},
        model=schema_model("json1"))
    replies = {"generator": ["4 * 3 = 7. 16 + 7 = 23.\nAnswer: 23"],
               "verifier": ['{"correct": false, "reason": "4 * 3 is 12"}',
                            '{"correct": true, "reason": "ok"}'],
               "refiner": ["4 * 3 = 12. 16 + 12 = 28.\nAnswer: 28"]}
    with scripted.use("json1", scripted.Script(replies)) as script:
        result = await team.arun("2 books at $8 and 4 pens at $3?", memory=False)
    asked = [c.params.get("response_format") for c in script.calls]
    assert asked[0] is None and asked[2] is None  # generator, refiner: free text
    assert asked[1]["type"] == "json_schema"
    assert asked[1]["json_schema"]["schema"]["required"] == ["correct", "reason"]
    assert result.answer == "28" and "4 * 3 is 12" in script.calls[2].prompt


async def test_critic_asks_for_json_and_others_get_markers() -> None:
    spec = {"name": "c", "strategy": "self_refine",
            "roles": {"generator": {}, "critic": {}, "refiner": {}}}
    replies = {"generator": ["Answer: 28"], "critic": ['{"issues": []}']}
    with scripted.use("json2", scripted.Script(replies)) as script:
        result = await load_team(spec, model=schema_model("json2")).arun("T", memory=False)
    assert script.calls[1].params["response_format"]["json_schema"]["name"] == "critic"
    assert result.stop_reason == "critic found no issues"
    with scripted.use("plain", scripted.Script({"generator": ["Answer: 28"],
                                                "critic": ["NO ISSUES"]})) as script:
        await load_team(spec, model="scripted/plain").arun("T", memory=False)
    assert all("response_format" not in c.params for c in script.calls)
