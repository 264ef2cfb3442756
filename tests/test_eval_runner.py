"""The evaluation runner end to end through real teams and the scripted model.

The script knows the dataset: it answers some items right (in the awkward ways
people write numbers) and the rest wrong, so the exact accuracy is known.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from concilium.agents.providers import faulty, scripted
from concilium.agents.providers.scripted import Rule, Script, ScriptCall
from concilium.errors import ConfigError
from concilium.eval.datasets import Dataset, load_dataset
from concilium.eval.runner import EvalOptions, Evaluation
from concilium.team import Team, load_team

DATA = Path(__file__).parent / "data"
KNOWN = DATA / "eval_known.jsonl"

# question start -> (right reply, wrong reply); items 5, 7 and 9 get the wrong one
REPLIES = {
    "Tom has 3": ("3 + 4 = 7\nAnswer: 7", "Answer: 8"),
    "A box holds": ("12 * 5 = 60\nAnswer: 60 eggs", "Answer: 17"),
    "Sara earns": ("Answer: $2,400.00", "Answer: $1,200"),
    "A pizza": ("Answer: 0.75", "Answer: 6/8ths"),
    "A shirt": ("Answer: 18 dollars", "Answer: 36 dollars"),
    "What is 100 -": ("Answer: 62", "Answer: 62"),
    "What is 9 *": ("Answer: 82", "Answer: 81"),
    "A train": ("Answer: 181 km", "Answer: 181 km"),
    "What is 1000": ("Answer: 125", "Answer: 8000"),
    "What is 2 +": ("Answer: 9", "Answer: 9"),
}
RIGHT = {0, 1, 2, 3, 4, 6, 8}


def _pick(call: ScriptCall, index: int) -> str:
    for start, replies in REPLIES.items():
        if start in call.text:
            return replies[index]
    raise AssertionError(f"unknown question in {call.prompt!r}")


def generator(call: ScriptCall) -> str:
    return _pick(call, 0)


def known_script(latency_s: float = 0.0) -> Script:
    return Script(rules=[Rule(generator, role="generator")], latency_s=latency_s)


def fixed_script(latency_s: float = 0.0) -> Script:
    """Generator as above; the verifier rejects the wrong answers and the refiner fixes them."""
    fixes = {"What is 100 -": "Answer: 63", "A train": "Answer: 180", "What is 2 +": "Answer: 8"}

    def verify(call: ScriptCall) -> str:
        final = re.search(r"Is the final answer (.+) correct\?", call.prompt)
        assert final is not None, call.prompt
        return "VERDICT: incorrect" if final.group(1) in {"62", "181", "9"} else "VERDICT: correct"

    def refine(call: ScriptCall) -> str:
        return next(fix for start, fix in fixes.items() if start in call.text)

    return Script(rules=[Rule(generator, role="generator"), Rule(verify, role="verifier"),
                         Rule(refine, role="refiner")], latency_s=latency_s)


def gvr_llm(model: str) -> Team:
    return load_team({
        "name": "gvr-llm", "strategy": "gvr", "model": model,
        "roles": {"generator": {}, "verifier": {}, "refiner": {}},
    })


def stable(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without what legitimately differs between runs: clocks and latencies."""
    data = json.loads(json.dumps(summary))
    data.pop("started_at"), data.pop("finished_at")
    for team in data["teams"]:
        team.pop("latency_ms")
    return data


def evaluate(teams: list[Team], dataset: Dataset, out: Path, **options: Any) -> Evaluation:
    evaluation = Evaluation(teams, dataset, out, EvalOptions(**options))
    asyncio.run(evaluation.run())
    evaluation.write_summary()
    return evaluation


def test_exact_accuracy_on_known_items(tmp_path: Path, examples: Path) -> None:
    with scripted.use("known", known_script()):
        team = load_team(examples / "single.yaml", model="scripted/known")
        evaluation = evaluate([team], load_dataset(KNOWN), tmp_path, concurrency=3)
    summary = json.loads((tmp_path / "summary.json").read_text())
    [result] = summary["teams"]
    assert result["name"] == "single" and result["accuracy"] == 0.7
    assert (result["correct"], result["done"], result["items"]) == (7, 10, 10)
    assert result["mean_llm_calls"] == 1.0 and result["total_tokens"] > 0
    assert result["accuracy_ci95"][0] < 0.7 < result["accuracy_ci95"][1]
    assert summary["complete"] is True
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(lines) == 10
    by_position = {r["position"]: r for r in lines}
    assert {p for p, r in by_position.items() if r["correct"]} == RIGHT
    assert [by_position[p]["extracted"] for p in (1, 2, 3, 4)] == ["60", "2400", "0.75", "18"]
    assert by_position[2]["matched"] == "2,400" and by_position[5]["matched"] is None
    assert all(r["grader"] == "number:1e-06" and r["status"] == "ok" for r in lines)
    assert evaluation.records()["single"][0]["question"].startswith("Tom")


def test_paired_teams_flips_and_mcnemar(tmp_path: Path, examples: Path) -> None:
    with scripted.use("fix", fixed_script()):
        single = load_team(examples / "single.yaml", model="scripted/fix")
        evaluation = evaluate([single, gvr_llm("scripted/fix")], load_dataset(KNOWN), tmp_path,
                              concurrency=4)
    summary = evaluation.summary()
    base, refined = summary["teams"]
    assert (base["accuracy"], refined["accuracy"]) == (0.7, 1.0)
    assert refined["flips"]["wrong->right"] == 3 and refined["flips"]["right->wrong"] == 0
    assert refined["revisions"] == 3 and refined["mean_llm_calls"] == pytest.approx(2.6)
    [pair] = summary["comparisons"]
    assert (pair["a"], pair["b"], pair["a_only"], pair["b_only"]) == ("single", "gvr-llm", 0, 3)
    assert pair["p_value"] == 0.25 and pair["significant"] is False


def test_resume_after_interruption_gives_the_same_summary(tmp_path: Path, examples: Path) -> None:
    data = load_dataset(KNOWN)
    with scripted.use("fix", fixed_script()) as script:
        teams = [load_team(examples / "single.yaml", model="scripted/fix"), gvr_llm("scripted/fix")]
        whole = evaluate(teams, data, tmp_path / "whole", concurrency=2)
        calls_whole = script.count()

    async def interrupted(out: Path) -> None:
        evaluation = Evaluation(teams, data, out, EvalOptions(concurrency=2))
        task = asyncio.create_task(evaluation.run(
            lambda index, record: task.cancel() if sum(
                s.tally.done for s in evaluation.slots) >= 7 else None))
        with pytest.raises(asyncio.CancelledError):
            await task

    out = tmp_path / "resumed"
    with scripted.use("fix", fixed_script()) as script:
        asyncio.run(interrupted(out))
        lines = (out / "items.jsonl").read_text().splitlines()
        assert 7 <= len(lines) < 20 and all(json.loads(line) for line in lines)
        with (out / "items.jsonl").open("a") as handle:  # a hard kill mid-write
            handle.write('{"team": "single", "item": "0:')
        partial = Evaluation(teams, data, out).summary()
        assert partial["complete"] is False
        assert sum(t["done"] for t in partial["teams"]) == len(lines)
        resumed = evaluate(teams, data, out, concurrency=2)
        calls_resumed = script.count()
    assert stable(resumed.summary()) == stable(whole.summary())
    # finished runs are never redone; only runs cut off mid-flight (at most 2, up to 4 calls
    # each) run again
    assert calls_whole <= calls_resumed <= calls_whole + 2 * 4
    records = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(records) == 20  # the torn line was cut off, the file is whole JSONL again

    with scripted.use("fix", fixed_script()) as script:  # a third run has nothing left to do
        again = evaluate(teams, data, out, concurrency=2)
        assert script.count() == 0
    assert stable(again.summary()) == stable(whole.summary())


def test_model_override_is_another_team(tmp_path: Path, examples: Path) -> None:
    data = load_dataset(KNOWN, limit=3)
    with scripted.use("known", known_script()), scripted.use("other", known_script()) as other:
        evaluate([load_team(examples / "single.yaml", model="scripted/known")], data, tmp_path)
        evaluate([load_team(examples / "single.yaml", model="scripted/other")], data, tmp_path)
        assert other.count() == 3  # a different model is a different content hash


def test_item_timeout_is_a_final_outcome(tmp_path: Path, examples: Path) -> None:
    data = load_dataset(KNOWN, limit=4)
    with scripted.use("slow", Script(default="Answer: 7", latency_s=60.0)) as script:
        team = load_team(examples / "single.yaml", model="scripted/slow")
        evaluation = evaluate([team], data, tmp_path, item_timeout_s=0.05, concurrency=4)
        [result] = evaluation.summary()["teams"]
        assert result["status"] == {"timeout": 4} and result["accuracy"] == 0.0
        record = evaluation.records()["single"][0]
        # Cut off at its timeout, not after the model's 60 s (a busy machine adds seconds).
        assert record["error"] == "item timeout (0.05 s)" and record["wall_ms"] < 30_000
        evaluate([team], data, tmp_path, item_timeout_s=0.05)
        assert script.count() == 0  # timed-out items are not run again


def test_failed_and_errored_items_run_again(tmp_path: Path, examples: Path) -> None:
    data = load_dataset(KNOWN, limit=4)
    team = load_team({"name": "flaky", "strategy": "single", "model": "faulty/down",
                      "retry": {"attempts": 1}, "roles": {"generator": {}}})
    with scripted.use("known", known_script()) as script:
        faulty.configure("down", faulty.Faults(inner="scripted/known", server_error=1.0))
        first = evaluate([team], data, tmp_path, requeue_rounds=0)
        [result] = first.summary()["teams"]
        assert result["status"] == {"failed": 4} and result["correct"] == 0
        assert "server error" in first.records()["flaky"][0]["error"]
        assert script.count() == 0
        faulty.configure("down", faulty.Faults(inner="scripted/known"))
        second = evaluate([team], data, tmp_path)
        assert script.count() == 4
    [result] = second.summary()["teams"]
    assert result["status"] == {"ok": 4} and result["accuracy"] == 1.0

    with scripted.use("short", Script({"generator": ["Answer: 7"]})) as short:
        team = load_team(examples / "single.yaml", model="scripted/short")
        third = evaluate([team], data, tmp_path / "short")
        assert short.count() == 4
    statuses = [r["status"] for r in third.records()["single"]]
    assert statuses.count("error") == 3 and statuses.count("ok") == 1
    errored = next(r for r in third.records()["single"] if r["status"] == "error")
    assert errored["error"].startswith("ScriptExhausted")


def test_concurrency_limit_holds_across_teams(tmp_path: Path, examples: Path) -> None:
    in_flight, peak = 0, 0

    class Counting(Team):
        async def arun(self, task: str, **kwargs: Any) -> Any:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await super().arun(task, **kwargs)
            finally:
                in_flight -= 1

    with scripted.use("known", known_script(latency_s=0.02)):
        single = load_team(examples / "single.yaml", model="scripted/known")
        teams = [Counting(single.spec), Counting(single.spec.model_copy(update={"name": "b"}))]
        evaluate(teams, load_dataset(KNOWN), tmp_path, concurrency=3)
    assert peak == 3


def test_changing_the_grader_regrades_without_calling_the_model(tmp_path: Path,
                                                                examples: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"question": "About how much is 99 + 1.5?", "answer": "100"}\n')
    data = load_dataset(dataset)
    with scripted.use("near", Script(default="Answer: 100.5")) as script:
        team = load_team(examples / "single.yaml", model="scripted/near")
        strict = evaluate([team], data, tmp_path / "out")
        assert strict.summary()["teams"][0]["accuracy"] == 0.0
        loose = evaluate([team], data, tmp_path / "out", tolerance=0.01)
        assert script.count() == 1
    [result] = loose.summary()["teams"]
    assert result["accuracy"] == 1.0 and result["grader"] == "number:0.01"


def test_bad_options_are_config_errors(tmp_path: Path, examples: Path) -> None:
    team = load_team(examples / "single.yaml")
    data = load_dataset("arith:2")
    with pytest.raises(ConfigError, match="share the name 'single'"):
        Evaluation([team, team.with_model("scripted/x")], data, tmp_path)
    with pytest.raises(ConfigError, match="--concurrency"):
        Evaluation([team], data, tmp_path, EvalOptions(concurrency=0))
    with pytest.raises(ConfigError, match="valid formats"):
        Evaluation([team], data, tmp_path, EvalOptions(answer_format="essay"))
    with pytest.raises(ConfigError, match="off, read or learn"):
        Evaluation([team], data, tmp_path, EvalOptions(memory="forget"))  # type: ignore[arg-type]


def test_memory_off_read_and_learn(tmp_path: Path, examples: Path) -> None:
    """learn stores a lesson per wrong item; read recalls them (and stores none); off sees none."""
    data = load_dataset(KNOWN)
    fixes = {"What is 100 -": "Answer: 63", "A train": "Answer: 180"}  # not item 9

    def generate(call: ScriptCall) -> str:
        for start, fix in fixes.items():
            if start in call.prompt and f"recheck every step of: {start}" in call.prompt:
                return fix
        return generator(call)

    def reflect(call: ScriptCall) -> str:
        start = next(s for s in REPLIES if s in call.prompt)
        return f"Reflection: recheck every step of: {start}"

    script = Script(rules=[Rule(generate, role="generator"), Rule(reflect, role="reflector")])
    with scripted.use("mem", script):
        team = load_team(examples / "single.yaml", model="scripted/mem")
        off = evaluate([team], data, tmp_path / "off").summary()["teams"][0]
        assert (off["accuracy"], off["lessons_stored"], script.count("reflector")) == (0.7, 0, 0)

        learn = evaluate([team], data, tmp_path / "learn", memory="learn", concurrency=1)
        learned = learn.summary()["teams"][0]
        assert learned["accuracy"] == 0.7  # an item's own lesson comes after it
        assert script.count("reflector") == 3  # one lesson per wrong item, none when right
        assert learned["lessons_stored"] >= 3
        assert {r["position"] for r in learn.records()["single"] if r["lessons_stored"]} == {
            5, 7, 9}

        read = evaluate([team], data, tmp_path / "read", memory="read").summary()["teams"][0]
        assert read["accuracy"] == 0.9 and read["items_with_lessons"] >= 2  # 5 and 7 fixed
        assert read["lessons_stored"] == 0 and script.count("reflector") == 3

        before = script.count()
        again = evaluate([team], data, tmp_path / "off2").summary()["teams"][0]
        assert again["accuracy"] == 0.7 and again["items_with_lessons"] == 0
        assert not any("Lessons from earlier" in c.text for c in script.calls[before:])


def test_the_collector_keeps_out_of_an_evaluation_s_way_and_is_restored_after(
        tmp_path: Path, examples: Path) -> None:
    """While an evaluation runs, what existed before it (modules, graphs, databases) is out
    of the cyclic collector's full passes and young collections are rarer (issue #17: ~10 %
    of the event loop); when it ends the heap is thawed and the thresholds are CPython's."""
    import gc

    from concilium.eval import runner

    before = gc.get_threshold()
    seen: list[tuple[int, int]] = []
    with scripted.use("known", known_script()):
        team = load_team(examples / "single.yaml", model="scripted/known")
        evaluation = Evaluation([team], load_dataset(KNOWN), tmp_path, EvalOptions())
        asyncio.run(evaluation.run(
            lambda index, record: seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))))
    assert len(seen) == 10
    assert all(frozen > 1000 and young >= runner.YOUNG_THRESHOLD for frozen, young in seen)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
