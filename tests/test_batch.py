"""``concilium batch`` in this process (no Ray): records, resume, retries, bad input, CLI.

The scripted model answers ``What is N plus one?`` with N+1 (and ``boom`` with a
failure), so every record's answer is known; its call log counts what a rerun costs.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from concilium.agents.providers import scripted
from concilium.agents.providers.scripted import Rule, Script, ScriptCall
from concilium.cli.app import app
from concilium.errors import ConfigError
from concilium.scale import Batch, BatchOptions, read_tasks
from concilium.team import load_team

TEAM = {"name": "plus", "strategy": "single", "model": "scripted/plus", "roles": {"generator": {}}}


def plus_one(call: ScriptCall) -> str:
    if "boom" in call.text:
        raise RuntimeError("the model broke")
    found = re.search(r"What is (\d+) plus one", call.text)
    assert found is not None, call.text
    return f"Answer: {int(found.group(1)) + 1}"


def script(latency_s: float = 0.0) -> Script:
    return Script(rules=[Rule(plus_one, role="generator")], latency_s=latency_s)


def write_tasks(path: Path, n: int, extra: list[dict[str, Any]] | None = None) -> Path:
    rows = [{"id": f"t{i}", "task": f"What is {i} plus one?", "reference": str(i + 1)}
            for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows + (extra or [])) + "\n", "utf-8")
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_batch_writes_one_record_per_task_and_a_rerun_skips_them(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 6)
    out = tmp_path / "answers.jsonl"
    with scripted.use("plus", script()) as model:
        batch = Batch(load_team(TEAM), tasks, out, BatchOptions(concurrency=3))
        asyncio.run(batch.run())
        assert model.count() == 6
        records = lines(out)
        assert sorted(r["id"] for r in records) == [f"t{i}" for i in range(6)]
        assert all(r["status"] == "ok" and r["correct"] is True for r in records)
        assert {r["id"]: r["answer"] for r in records}["t4"] == "5"
        assert all(r["llm_calls"] == 1 and r["total_tokens"] > 0 for r in records)
        assert len({r["run_id"] for r in records}) == 6

        again = Batch(load_team(TEAM), tasks, out, BatchOptions(concurrency=3))
        assert again.pending == []
        asyncio.run(again.run())
        assert model.count() == 6 and len(lines(out)) == 6


def test_an_interrupted_batch_resumes_where_it_stopped(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 8)
    out = tmp_path / "answers.jsonl"
    with scripted.use("plus", script(latency_s=0.05)) as model:
        first = Batch(load_team(TEAM), tasks, out, BatchOptions(concurrency=2))

        async def stop_after_three() -> None:
            seen = asyncio.Event()
            count = 0

            def on_record(record: dict[str, Any]) -> None:
                nonlocal count
                count += 1
                if count == 3:
                    seen.set()

            running = asyncio.create_task(first.run(on_record=on_record))
            await asyncio.wait_for(seen.wait(), 30)
            running.cancel()  # what Ctrl-C does to the driver
            with pytest.raises(asyncio.CancelledError):
                await running

        asyncio.run(stop_after_three())
        partial = lines(out)
        assert 3 <= len(partial) < 8
        with out.open("a") as handle:
            handle.write('{"id": "t7", "torn')  # a hard kill mid-write
        second = Batch(load_team(TEAM), tasks, out, BatchOptions(concurrency=2))
        assert len(second.pending) == 8 - len(partial)
        asyncio.run(second.run())
    records = lines(out)
    assert sorted(r["id"] for r in records) == [f"t{i}" for i in range(8)]
    assert model.count() <= 8 + 2  # at most the runs cut off in flight were repeated


def test_failed_tasks_run_again_under_a_new_run_id(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2, [{"id": "bad", "task": "boom"}])
    out = tmp_path / "answers.jsonl"
    with scripted.use("plus", script()):
        team = load_team(TEAM)
        asyncio.run(Batch(team, tasks, out).run())
        [bad] = [r for r in lines(out) if r["id"] == "bad"]
        assert bad["status"] in ("failed", "error") and bad["error"]
        rerun = Batch(team, tasks, out)
        assert [(t.id, t.attempt) for t in rerun.pending] == [("bad", 1)]
        asyncio.run(rerun.run())
    bads = [r for r in lines(out) if r["id"] == "bad"]
    assert len(bads) == 2 and bads[0]["run_id"] != bads[1]["run_id"]


def test_ids_default_to_line_numbers_and_bad_lines_are_named(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "a"}\n\n{"task": "b", "answer": 3}\n', "utf-8")
    assert [(t.id, t.task, t.reference) for t in read_tasks(good)] == [
        ("1", "a", None), ("3", "b", "3")]
    cases = {
        '{"task": "a"}\nnot json\n': "2: not JSON",
        '["a"]\n': "1: a task is a JSON object, not list",
        '{"id": 1, "task": ""}\n': "needs a non-empty 'task'",
        '{"id": 1, "task": "a"}\n{"id": 1, "task": "b"}\n': "id '1' appears twice",
        "\n": "no tasks",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text, "utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)):
            read_tasks(bad)


def test_cli_batch_runs_and_resumes(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 3)
    out = tmp_path / "answers.jsonl"
    team = tmp_path / "plus.yaml"
    team.write_text(json.dumps(TEAM), "utf-8")
    runner = CliRunner()
    with scripted.use("plus", script()) as model:
        result = runner.invoke(app, ["batch", str(team), "--input", str(tasks),
                                     "--output", str(out), "-c", "2"])
        assert result.exit_code == 0, result.output
        assert "3 task(s) to run, 0 already done" in result.output
        assert len(lines(out)) == 3 and model.count() == 3
        again = runner.invoke(app, ["batch", str(team), "-i", str(tasks), "-o", str(out), "-q"])
        assert again.exit_code == 0 and model.count() == 3
    missing = runner.invoke(app, ["batch", str(team), "-i", str(tmp_path / "no.jsonl"),
                                  "-o", str(out)])
    assert missing.exit_code == 2 and "no such input file" in missing.output
