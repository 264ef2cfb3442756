"""Control flow of ``single`` and ``gvr``, exactly, with the scripted model."""

from __future__ import annotations

from typing import Any

import pytest

from concilium import load_team
from concilium.agents.context import RunContext
from concilium.agents.providers import scripted
from concilium.errors import ScriptExhausted
from concilium.team import RunFailed

TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
WRONG2 = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"


def gvr(check: str = "calculator", max_rounds: int = 3, **limits: Any) -> dict[str, Any]:
    return {
        "name": "gvr-test",
        "strategy": "gvr",
        "limits": {"max_rounds": max_rounds, **limits},
        "roles": {"generator": {}, "verifier": {"check": check}, "refiner": {}},
    }


async def test_single_is_one_call() -> None:
    team = load_team({"name": "s", "strategy": "single", "roles": {"generator": {}}},
                     model="scripted/one")
    with scripted.use("one", scripted.Script({"generator": [RIGHT]})) as script:
        result = await team.arun(TASK, reference="411")
    assert result.answer == "411" and result.correct is True
    assert result.usage.llm_calls == 1 and script.count() == 1
    assert [s["role"] for s in result.steps] == ["generator"]
    assert result.usage.total_tokens == result.steps[0]["prompt_tokens"] + result.steps[0][
        "completion_tokens"
    ] > 0


async def test_gvr_accepts_on_first_try_without_refining() -> None:
    team = load_team(gvr(), model="scripted/g1")
    with scripted.use("g1", scripted.Script({"generator": [RIGHT]})) as script:
        result = await team.arun(TASK)
    assert [s["role"] for s in result.steps] == ["generator", "verifier"]
    assert script.count("refiner") == 0
    assert result.stop_reason == "verifier accepted" and result.rounds == 0


async def test_gvr_refines_while_the_verifier_rejects() -> None:
    team = load_team(gvr(), model="scripted/g2")
    replies = {"generator": [WRONG], "refiner": [WRONG2, RIGHT]}
    with scripted.use("g2", scripted.Script(replies)) as script:
        result = await team.arun(TASK, reference="411")
    assert [s["role"] for s in result.steps] == [
        "generator", "verifier", "refiner", "verifier", "refiner", "verifier"
    ]
    assert result.answer == "411" and result.rounds == 2
    assert result.flips == {"changed": 2, "right->wrong": 0, "wrong->right": 1}
    # The refiner saw the calculator's feedback about its false claim.
    assert "Previous solution:\n" + WRONG in script.calls[1].prompt
    assert "17 * 24 = 408, not 398" in script.calls[1].prompt


async def test_gvr_stops_at_its_round_limit() -> None:
    team = load_team(gvr(max_rounds=2), model="scripted/g3")
    with scripted.use("g3", scripted.Script({"generator": [WRONG]}, default=WRONG2)) as script:
        result = await team.arun(TASK)
    assert script.count("refiner") == 2
    assert result.stop_reason == "round limit (2) reached"
    assert result.answer == "403" and result.status == "ok"


async def test_gvr_records_a_right_answer_turned_wrong() -> None:
    replies = {"generator": [RIGHT], "verifier": ["VERDICT: incorrect, recheck"],
               "refiner": [WRONG]}
    team = load_team(gvr(check="llm", max_rounds=1), model="scripted/g4")
    with scripted.use("g4", scripted.Script(replies, default="VERDICT: incorrect")):
        result = await team.arun(TASK, reference="411")
    assert result.flips["right->wrong"] == 1 and result.correct is False


async def test_llm_verifier_that_ignores_the_format_does_not_trigger_refinement() -> None:
    replies = {"generator": [WRONG], "verifier": ["I like turtles."]}
    team = load_team(gvr(check="llm"), model="scripted/g5")
    with scripted.use("g5", scripted.Script(replies)) as script:
        result = await team.arun(TASK)
    assert script.count("refiner") == 0
    assert result.steps[1]["parsed"]["parsed"] is False


async def test_call_budget_stops_the_run_with_a_partial_result() -> None:
    team = load_team(gvr(max_llm_calls=2), model="scripted/g6")
    with scripted.use("g6", scripted.Script({"generator": [WRONG]}, default=WRONG2)) as script:
        result = await team.arun(TASK)
    assert result.status == "stopped"
    assert result.stop_reason == "budget: max_llm_calls (2) reached"
    assert script.count() == 2 and result.answer == "403"


async def test_model_failure_is_reported_with_the_partial_result() -> None:
    def down(call: scripted.ScriptCall) -> str:
        raise ConnectionError("provider down")

    spec = gvr()
    spec["retry"] = {"attempts": 2, "initial_backoff_s": 0.0}
    team = load_team(spec, model="scripted/g7")
    with scripted.use("g7", scripted.Script({"generator": [WRONG]}, default=down)),\
            pytest.raises(RunFailed, match="all models failed") as caught:
        await team.arun(TASK)
    assert [s["role"] for s in caught.value.result.steps] == ["generator", "verifier"]
    assert caught.value.result.status == "failed"


async def test_script_errors_are_not_swallowed() -> None:
    team = load_team(gvr(), model="scripted/g8")
    with scripted.use("g8", scripted.Script({"generator": [WRONG]})), \
            pytest.raises(ScriptExhausted):
        await team.arun(TASK)


async def test_compiled_graph_runs_like_any_langgraph_graph() -> None:
    team = load_team(gvr(), model="scripted/g9")
    from langgraph.graph.state import CompiledStateGraph

    graph = team.compile()
    assert isinstance(graph, CompiledStateGraph)
    with scripted.use("g9", scripted.Script({"generator": [RIGHT]})):
        state = await graph.ainvoke({"task": TASK}, context=team.context())
    assert state["answer"]["value"] == "411"
    assert state["stop_reason"] == "verifier accepted"
    assert [s["role"] for s in state["steps"]] == ["generator", "verifier"]


async def test_steps_stream_live_on_langgraphs_custom_channel() -> None:
    team = load_team(gvr(), model="scripted/g10")
    with scripted.use("g10", scripted.Script({"generator": [RIGHT]})):
        chunks = [c async for c in team.compile().astream(
            {"task": TASK}, context=team.context(), stream_mode="custom")]
    assert [c["step"]["role"] for c in chunks] == ["generator", "verifier"]


async def test_model_precedence_role_then_team_then_setting(monkeypatch) -> None:
    from concilium.settings import get_settings

    monkeypatch.setenv("CONCILIUM_MODEL", "scripted/from-env")
    get_settings.cache_clear()
    spec = {"name": "m", "strategy": "gvr", "roles": {
        "generator": {"model": "scripted/role"}, "verifier": {}, "refiner": {}}}
    team = load_team(spec)
    ctx = team.context()
    assert ctx.default_model == "scripted/from-env"
    assert ctx.model_for(team.spec.roles["generator"]) == "scripted/role"
    assert ctx.model_for(team.spec.roles["verifier"]) == "scripted/from-env"
    team_level = load_team({**spec, "model": "scripted/team"})
    assert team_level.context().model_for(team_level.spec.roles["verifier"]) == "scripted/team"
    assert isinstance(ctx, RunContext)


async def test_prompt_overrides_from_yaml_are_rendered() -> None:
    spec = {"name": "p", "strategy": "single", "roles": {"generator": {"prompt": {
        "system": "Be terse. {{ format_hint }}", "user": "TASK>> {{ task }}"}}}}
    team = load_team(spec, model="scripted/p")
    with scripted.use("p", scripted.Script({"generator": [RIGHT]})) as script:
        await team.arun(TASK, lessons=["check the units"])
    system, user = script.calls[0].messages
    assert system["content"].startswith("Be terse. Finish with a last line")
    assert user["content"] == f"TASK>> {TASK}"


async def test_lessons_reach_the_packaged_generator_prompt() -> None:
    team = load_team({"name": "l", "strategy": "single", "roles": {"generator": {}}},
                     model="scripted/l")
    with scripted.use("l", scripted.Script({"generator": [RIGHT]})) as script:
        await team.arun(TASK, lessons=["recompute each product"])
    assert "- recompute each product" in script.calls[0].prompt
    assert script.calls[0].prompt.endswith(TASK)


async def test_llm_verifier_saying_no_error_accepts() -> None:
    replies = {"generator": [RIGHT], "verifier": ["There is no error in this solution."]}
    team = load_team(gvr(check="llm"), model="scripted/g11")
    with scripted.use("g11", scripted.Script(replies)) as script:
        result = await team.arun(TASK)
    assert script.count("refiner") == 0 and result.stop_reason == "verifier accepted"
    assert result.steps[1]["parsed"]["accepted"] is True


# ------------------------------------------------------------ check: tests, tests apart

CODE_TASK = "Write a Python function add(a, b) that returns the sum of a and b."
CODE_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
BAD_CODE = "```python\ndef add(a, b):\n    return a - b\n```"
GOOD_CODE = "```python\ndef add(a, b):\n    return a + b\n```"


def code_gvr() -> dict[str, Any]:
    return {**gvr(check="tests"), "name": "code-gvr", "answer": {"format": "code"}}


async def test_gvr_runs_tests_given_apart_from_the_task() -> None:
    team = load_team(code_gvr(), model="scripted/t1")
    replies = {"generator": [BAD_CODE], "refiner": [GOOD_CODE]}
    with scripted.use("t1", scripted.Script(replies)) as script:
        result = await team.arun(CODE_TASK, tests=CODE_TESTS)
    assert [s["role"] for s in result.steps] == ["generator", "verifier", "refiner", "verifier"]
    first, last = result.steps[1]["parsed"], result.steps[3]["parsed"]
    assert first["accepted"] is False and "AssertionError" in first["feedback"]
    assert last["accepted"] is True and last["checked"] is True  # the tests really ran
    assert "assert add" not in script.calls[0].text  # the generator never saw them
    assert result.stop_reason == "verifier accepted" and "a + b" in (result.answer or "")


async def test_tests_written_in_the_task_still_work() -> None:
    team = load_team(code_gvr(), model="scripted/t2")
    with scripted.use("t2", scripted.Script({"generator": [BAD_CODE], "refiner": [GOOD_CODE]})):
        result = await team.arun(f"{CODE_TASK}\n```python\n{CODE_TESTS}```")
    assert [s["parsed"]["accepted"] for s in result.steps if s["role"] == "verifier"] == [
        False, True]


def test_cli_run_reads_tests_from_a_file(tmp_path) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from concilium.cli.app import app

    team_file, tests_file = tmp_path / "code.yaml", tmp_path / "tests.py"
    team_file.write_text(yaml.safe_dump(code_gvr()))
    tests_file.write_text(CODE_TESTS)
    replies = {"generator": [BAD_CODE], "refiner": [GOOD_CODE]}
    with scripted.use("t3", scripted.Script(replies)) as script:
        out = CliRunner().invoke(app, ["run", str(team_file), CODE_TASK, "-m", "scripted/t3",
                                       "--tests", str(tests_file), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["stop_reason"] == "verifier accepted" and data["rounds"] == 1
    assert "assert add" not in script.calls[0].text
    missing = CliRunner().invoke(app, ["run", str(team_file), CODE_TASK, "-m", "scripted/t3",
                                       "--tests", str(tmp_path / "nope.py")],
                                 env={"COLUMNS": "400"})  # one line, however long tmp_path is
    assert missing.exit_code == 2 and "does not exist" in missing.output


async def test_eval_items_carry_their_tests_to_the_verifier(tmp_path) -> None:
    import json

    from concilium.eval.datasets import load_dataset
    from concilium.eval.runner import EvalOptions, Evaluation

    data = tmp_path / "code.jsonl"
    data.write_text(json.dumps({"id": "add", "question": CODE_TASK, "answer": CODE_TESTS,
                                "tests": CODE_TESTS}) + "\n")
    dataset = load_dataset(data)
    assert dataset.items[0].tests == CODE_TESTS
    team = load_team(code_gvr(), model="scripted/t4")
    replies = {"generator": [BAD_CODE], "refiner": [GOOD_CODE]}
    with scripted.use("t4", scripted.Script(replies)) as script:
        await Evaluation([team], dataset, tmp_path / "out", EvalOptions(concurrency=1)).run()
    assert script.count("refiner") == 1  # the verifier ran the tests and rejected the first
    assert "assert add" not in script.calls[0].text
