"""The run ledger: every run and step in SQL, written while the run goes, even if it crashes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from memory_fixtures import db_url, memory  # noqa: F401
from sqlalchemy import func, select
from waiting import wait_for

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.errors import ScriptExhausted
from concilium.memory.ledger import AmbiguousRunId, find_run, list_runs, usage_stats
from concilium.memory.models import RunRow, StepRow
from concilium.memory.store import Memory
from concilium.settings import get_settings

TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"


def gvr(name: str = "ledger-gvr", **extra: Any) -> dict[str, Any]:
    return {"name": name, "strategy": "gvr", "limits": {"max_rounds": 2},
            "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}},
            **extra}


def steps_in_sql(memory: Memory, run_id: str) -> int:  # noqa: F811
    with memory.db.session() as session:
        return int(session.execute(
            select(func.count()).select_from(StepRow).where(StepRow.run_id == run_id)
        ).scalar_one())


async def test_a_run_and_all_its_steps_are_recorded(memory: Memory) -> None:  # noqa: F811
    team = load_team(gvr(), model="scripted/l1")
    with scripted.use("l1", scripted.Script({"generator": [WRONG], "refiner": [RIGHT]})):
        result = await team.arun(TASK, reference="411", memory=memory)
    run = find_run(memory.db, result.run_id)
    assert run is not None
    assert (run.status, run.answer, run.correct, run.team, run.strategy) == (
        "ok", "411", True, "ledger-gvr", "gvr")
    assert run.team_hash == team.spec.content_hash() and run.task == TASK
    assert run.reference == "411" and run.ended_at is not None and run.error is None
    assert run.llm_calls == result.usage.llm_calls == 2 and run.tool_calls == 2
    assert run.prompt_tokens == result.usage.prompt_tokens > 0
    assert run.completion_tokens == result.usage.completion_tokens > 0
    assert [s.role for s in run.steps] == ["generator", "verifier", "refiner", "verifier"]
    assert [s.seq for s in run.steps] == [1, 2, 3, 4]
    for row, step in zip(run.steps, result.steps, strict=True):
        assert row.uid == step["id"] and row.node == step["node"] and row.model == step["model"]
        assert row.round == step["round"] and row.kind == step["kind"]
        assert row.messages == step["messages"] and row.output == step["output"]
        assert row.parsed == step["parsed"] and row.answer == step["answer"]
        assert row.prompt_tokens == step["prompt_tokens"]
        assert row.latency_ms == pytest.approx(step["latency_ms"])
    refiner = run.steps[2]
    assert refiner.answer_changed is True and refiner.flip == "wrong->right"
    assert run.steps[1].model == "calculator" and run.steps[1].kind == "tool"


async def test_steps_are_in_sql_while_the_run_is_still_going(memory: Memory) -> None:  # noqa: F811
    seen: list[int | str] = []

    def refiner(call: scripted.ScriptCall) -> str:
        run_id = memory_run_ids[0]
        try:  # the run cannot go on meanwhile: the refiner has not answered
            wait_for(lambda: steps_in_sql(memory, run_id) >= 2,
                     what="the generator's and verifier's steps in SQL")
        except AssertionError as error:
            seen.append(str(error))
        seen.append(steps_in_sql(memory, run_id))
        return RIGHT

    memory_run_ids = ["live-run-1"]
    team = load_team(gvr(), model="scripted/l2")
    with scripted.use("l2", scripted.Script({"generator": [WRONG], "refiner": [refiner]})):
        await team.arun(TASK, memory=memory, run_id="live-run-1")
    assert seen == [2]  # generator and verifier were written before the refiner answered


async def test_a_crashed_run_still_shows_its_steps(memory: Memory) -> None:  # noqa: F811
    team = load_team(gvr(), model="scripted/l3")
    with (scripted.use("l3", scripted.Script({"generator": [WRONG]})),
          pytest.raises(ScriptExhausted)):
        await team.arun(TASK, memory=memory, run_id="crash-1")
    run = find_run(memory.db, "crash-1")
    assert run is not None and run.status == "failed"
    assert "ScriptExhausted" in (run.error or "")
    assert [s.role for s in run.steps] == ["generator", "verifier"]


def test_a_killed_process_leaves_its_steps_behind(tmp_path: Path) -> None:
    """The process dies hard (no cleanup, no flush) in the middle of its run."""
    code = """
import asyncio, os, time
from concilium import load_team
from concilium.agents.providers import scripted
from sqlalchemy import text
from concilium.memory.store import Memory
def written():
    with Memory.open(redis_url=False).db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM steps WHERE run_id = 'killed-1'")).scalar()
def die(call):
    deadline = time.monotonic() + 60  # a slow model: the writer commits the earlier steps
    while written() < 2:
        if time.monotonic() > deadline:
            os._exit(4)  # the ledger writer never wrote them
        time.sleep(0.005)
    os._exit(3)
scripted.register("kill", scripted.Script({
    "generator": ["17 * 24 = 398. 398 + 3 = 401.\\nAnswer: 401"], "refiner": [die]}))
team = load_team({"name": "doomed", "strategy": "gvr",
                  "roles": {"generator": {}, "verifier": {"check": "calculator"},
                            "refiner": {}}}, model="scripted/kill")
asyncio.run(team.arun("What is 17 * 24 + 3?", run_id="killed-1"))
"""
    home = tmp_path / "home"
    env = {**os.environ, "CONCILIUM_HOME": str(home)}
    env.pop("CONCILIUM_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 3, done.stderr[-2000:]
    ledger = Memory.open(f"sqlite:///{(home / 'concilium.db').as_posix()}", redis_url=False)
    try:
        run = find_run(ledger.db, "killed-1")
        assert run is not None and run.status == "running" and run.ended_at is None
        assert [s.role for s in run.steps] == ["generator", "verifier"]
    finally:
        ledger.close()


async def test_the_default_ledger_is_sqlite_under_home(tmp_path: Path) -> None:
    team = load_team(gvr(), model="scripted/l4")
    with scripted.use("l4", scripted.Script({"generator": [RIGHT]})):
        result = await team.arun(TASK)
    path = get_settings().home / "concilium.db"
    assert path.is_file()
    default = Memory.open()
    assert default.db.sqlite_path == path
    assert [r.id for r in list_runs(default.db)] == [result.run_id]


async def test_record_false_and_memory_false_write_nothing(tmp_path: Path) -> None:
    team = load_team(gvr(), model="scripted/l5")
    with scripted.use("l5", scripted.Script(default=RIGHT)):
        await team.arun(TASK, memory=False)
        assert not (get_settings().home / "concilium.db").exists()
        await team.arun(TASK, record=False)
    assert list_runs(Memory.open().db) == []


async def test_a_budget_stop_is_recorded_with_its_reason(memory: Memory) -> None:  # noqa: F811
    team = load_team(gvr(limits={"max_rounds": 3, "max_llm_calls": 2}), model="scripted/l6")
    with scripted.use("l6", scripted.Script({"generator": [WRONG]}, default=WRONG)):
        result = await team.arun(TASK, memory=memory)
    run = find_run(memory.db, result.run_id)
    assert run is not None and run.status == "stopped" == result.status
    assert run.stop_reason == result.stop_reason and "max_llm_calls" in (run.stop_reason or "")
    assert [s.role for s in run.steps] == [s["role"] for s in result.steps] == [
        "generator", "verifier", "refiner", "verifier"]


async def test_usage_stats_by_team_role_and_model(memory: Memory) -> None:  # noqa: F811
    with scripted.use("l7", scripted.Script({"generator": [WRONG, RIGHT], "refiner": [RIGHT]})):
        await load_team(gvr("team-a"), model="scripted/l7").arun(TASK, memory=memory)
        await load_team(gvr("team-b"), model="scripted/l7").arun(TASK, memory=memory)
    rows = usage_stats(memory.db, since=timedelta(hours=1))
    keyed = {(r["team"], r["role"], r["model"]): r for r in rows}
    assert set(keyed) == {("team-a", "generator", "scripted/l7"),
                          ("team-a", "refiner", "scripted/l7"),
                          ("team-a", "verifier", "calculator"),
                          ("team-b", "generator", "scripted/l7"),
                          ("team-b", "verifier", "calculator")}
    assert keyed[("team-a", "verifier", "calculator")]["tool_calls"] == 2
    assert keyed[("team-a", "generator", "scripted/l7")]["calls"] == 1
    assert keyed[("team-a", "generator", "scripted/l7")]["prompt_tokens"] > 0
    by_model = usage_stats(memory.db, by=["model"])
    assert {r["model"]: r["calls"] for r in by_model} == {"scripted/l7": 3, "calculator": 0}
    assert usage_stats(memory.db, since=timedelta(hours=1), team="team-b")[0]["team"] == "team-b"
    from concilium.memory.models import utcnow

    assert usage_stats(memory.db, since=utcnow() + timedelta(minutes=1)) == []
    with pytest.raises(ValueError, match="cannot group by"):
        usage_stats(memory.db, by=["colour"])


async def test_find_run_by_prefix(memory: Memory) -> None:  # noqa: F811
    team = load_team(gvr(), model="scripted/l8")
    with scripted.use("l8", scripted.Script(default=RIGHT)):
        await team.arun(TASK, memory=memory, run_id="abc111")
        await team.arun(TASK, memory=memory, run_id="abc222")
    assert find_run(memory.db, "abc2").id == "abc222"  # type: ignore[union-attr]
    assert find_run(memory.db, "zzz") is None
    with pytest.raises(AmbiguousRunId):
        find_run(memory.db, "abc")
    with memory.db.session() as session:
        assert session.execute(select(func.count()).select_from(RunRow)).scalar_one() == 2


async def test_secrets_never_reach_the_ledger(memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811, E501
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-very-secret-value")
    team = load_team(gvr(), model="scripted/l9")
    task = TASK + " (token tok-very-secret-value, key sk-abcdefghijklmnopqrstuvwx)"
    with scripted.use("l9", scripted.Script(default=RIGHT)):
        result = await team.arun(task, memory=memory)
    run = find_run(memory.db, result.run_id)
    assert run is not None
    blob = repr((run.task, [(s.messages, s.output) for s in run.steps]))
    assert "tok-very-secret-value" not in blob and "sk-abcdefghijklmnop" not in blob
    assert "***" in run.task


async def test_a_run_started_again_under_its_id_replaces_the_earlier_attempt(
        memory: Memory) -> None:  # noqa: F811
    """A worker killed after a step but before the run's end leaves a ``running`` row; the
    re-run under the same id (a new attempt: new task ids, new step ids) is the run."""
    team = load_team(gvr("again"), model="scripted/l9")
    first = memory.ledger.start(run_id="again-1", team="again", team_hash="h",
                                strategy="gvr", task=TASK)
    first.step({"id": "attempt-1-step", "node": "generator", "role": "generator",
                "kind": "llm", "output": WRONG})
    assert first.flush(10.0)  # the attempt's row and step are in SQL; then it "dies"
    with scripted.use("l9", scripted.Script({"generator": [RIGHT]})):
        result = await team.arun(TASK, run_id="again-1", memory=memory, durable=False)
    run = find_run(memory.db, "again-1")
    assert run is not None and run.status == "ok" and run.answer == "411"
    assert [s.uid for s in run.steps] == [s["id"] for s in result.steps]
    assert [s.seq for s in run.steps] == [1, 2]
