"""Evaluation results in SQL beside the files, on real SQLite and PostgreSQL.

Real teams on the scripted model, a real database per test (a SQLite file, or a
PostgreSQL schema of its own), the real ``concilium`` command line. What must
hold: the summary rebuilt from SQL alone is ``summary.json``; a rerun, a resume,
a record sent twice or a directory synced again never adds a row; the files are
the same with and without SQL; a database that goes away mid-run costs a
warning, not the evaluation, and the next run fills the rows in.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from memory_fixtures import TcpProxy, db_url, pg_schema, sqlite_url  # noqa: F401
from sqlalchemy import text
from typer.testing import CliRunner

from concilium.agents.providers import scripted
from concilium.agents.providers.scripted import Rule, Script, ScriptCall
from concilium.cli.app import app
from concilium.eval.datasets import Dataset, load_dataset
from concilium.eval.runner import EvalOptions, Evaluation
from concilium.eval.store import ID_FILE, EvalStore, EvalStoreWarning, read_eval_id, stored_summary
from concilium.memory.db import close_database, open_database
from concilium.team import Team, load_team

runner = CliRunner()
DATA = "arith:10:5"


def _value(call: ScriptCall) -> int:
    from concilium.tools.calculator import evaluate, find_expression

    expression = find_expression(call.prompt)
    return int(evaluate(expression)) if expression else 0


def oracle() -> Script:
    """Generators are wrong on even answers; a verifier catches it, a refiner fixes it."""

    def generate(call: ScriptCall) -> str:
        value = _value(call)
        return f"Answer: {value if value % 2 else value + 1}"

    def verify(call: ScriptCall) -> str:
        right = f"final answer {_value(call)} " in call.prompt
        return "VERDICT: correct" if right else "VERDICT: incorrect"

    return Script(rules=[Rule(generate, role="generator"), Rule(verify, role="verifier"),
                         Rule(lambda call: f"Answer: {_value(call)}", role="refiner")])


def teams(examples: Path) -> list[Team]:
    return [load_team(examples / "single.yaml", model="scripted/sql"),
            load_team({"name": "gvr-llm", "strategy": "gvr", "model": "scripted/sql",
                       "roles": {"generator": {}, "verifier": {}, "refiner": {}}})]


def evaluate(team_list: list[Team], data: Dataset, out: Path, url: str | None,
             **options: Any) -> Evaluation:
    evaluation = Evaluation(team_list, data, out, EvalOptions(**options))
    if url is not None:
        evaluation.store = EvalStore.open(out, url)
    asyncio.run(evaluation.run())
    evaluation.write_summary()
    return evaluation


def plain(value: Any) -> Any:
    """As JSON has it (tuples are lists)."""
    return json.loads(json.dumps(value))


def count(url: str, table: str = "eval_results") -> int:
    with open_database(url).engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def from_sql(url: str, out: Path) -> dict[str, Any]:
    eval_id = read_eval_id(out)
    assert eval_id is not None
    return plain(stored_summary(open_database(url), eval_id)[1])


def on_disk(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


def test_the_summary_from_sql_is_summary_json_and_a_rerun_adds_no_row(
        tmp_path: Path, examples: Path, db_url: str) -> None:  # noqa: F811
    data = load_dataset(DATA)
    out = tmp_path / "out"
    with scripted.use("sql", oracle()) as script:
        evaluate(teams(examples), data, out, db_url, concurrency=3)
        assert script.count() > 0
    summary = on_disk(out)
    assert [t["done"] for t in summary["teams"]] == [10, 10]
    assert 0 < summary["teams"][0]["accuracy"] < 1 == summary["teams"][1]["accuracy"]
    assert from_sql(db_url, out) == summary  # every field, clocks and latencies too
    assert (count(db_url), count(db_url, "evals")) == (20, 1)
    with open_database(db_url).engine.connect() as conn:
        correct, runs, tokens = conn.execute(text(
            "SELECT sum(CASE WHEN correct THEN 1 ELSE 0 END), count(run_id), sum(total_tokens) "
            "FROM eval_results")).one()
        complete, finished = conn.execute(text("SELECT complete, finished_at FROM evals")).one()
    assert correct == sum(t["correct"] for t in summary["teams"]) and runs == 20
    assert tokens == sum(t["total_tokens"] for t in summary["teams"])
    assert bool(complete) and finished is not None

    with scripted.use("sql", oracle()) as script:  # the same command again: nothing to run
        evaluate(teams(examples), data, out, db_url, concurrency=3)
        assert script.count() == 0
    assert (count(db_url), count(db_url, "evals")) == (20, 1)
    assert from_sql(db_url, out) == on_disk(out)


def test_an_interrupted_run_resumes_to_the_same_rows(tmp_path: Path, examples: Path,
                                                      db_url: str) -> None:  # noqa: F811
    data = load_dataset(DATA)
    out = tmp_path / "out"

    async def interrupted() -> None:
        evaluation = Evaluation(teams(examples), data, out, EvalOptions(concurrency=2))
        evaluation.store = EvalStore.open(out, db_url)
        task = asyncio.create_task(evaluation.run(
            lambda index, record: task.cancel() if sum(
                s.tally.done for s in evaluation.slots) >= 7 else None))
        with pytest.raises(asyncio.CancelledError):
            await task

    with scripted.use("sql", oracle()):
        asyncio.run(interrupted())
        lines = (out / "items.jsonl").read_text().splitlines()
        assert 7 <= len(lines) < 20
        assert count(db_url) == len({(json.loads(x)["team"], json.loads(x)["item"])
                                     for x in lines})  # flushed on the way out
        with (out / "items.jsonl").open("a") as handle:  # a hard kill mid-write
            handle.write('{"team": "single", "item": "0:')
        evaluate(teams(examples), data, out, db_url, concurrency=2)
        evaluate(teams(examples), data, tmp_path / "whole", None, concurrency=2)
    assert count(db_url) == 20 and count(db_url, "evals") == 1
    summary = from_sql(db_url, out)
    assert summary == on_disk(out) and summary["complete"] is True
    whole = on_disk(tmp_path / "whole")
    for name in ("accuracy", "correct", "done", "failed", "total_tokens"):
        assert [t[name] for t in summary["teams"]] == [t[name] for t in whole["teams"]], name


def test_rows_a_run_never_wrote_are_filled_in_and_a_resent_record_lands_once(
        tmp_path: Path, examples: Path, sqlite_url: str) -> None:  # noqa: F811
    """A driver killed before its rows were written (or run without SQL): the next run
    writes them; a record sent twice (a Ray item re-run after its worker died) is one row."""
    data = load_dataset(DATA, limit=4)
    out = tmp_path / "out"
    with scripted.use("sql", oracle()) as script:
        files_only = evaluate(teams(examples), data, out, None)
        assert not (out / ID_FILE).exists()
        calls = script.count()
        evaluate(teams(examples), data, out, sqlite_url)
        assert script.count() == calls
    assert count(sqlite_url) == 8 and from_sql(sqlite_url, out) == on_disk(out)

    store = EvalStore.open(out, sqlite_url)
    record = files_only.records()["single"][0]
    for _ in range(2):
        store.put({**record, "status": "ok", "answer": "999"})
    assert store.flush()
    assert count(sqlite_url) == 8
    with open_database(sqlite_url).engine.connect() as conn:
        assert conn.execute(text("SELECT answer FROM eval_results WHERE item = :i AND "
                                 "team = 'single'"), {"i": record["item"]}).scalar() == "999"


def test_the_files_are_the_same_with_and_without_sql(tmp_path: Path, examples: Path,
                                                     sqlite_url: str) -> None:  # noqa: F811
    data = load_dataset(DATA, limit=5)
    with scripted.use("sql", oracle()):
        evaluate(teams(examples), data, tmp_path / "files", None, concurrency=1)
        evaluate(teams(examples), data, tmp_path / "sql", sqlite_url, concurrency=1)

    def records(out: Path) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
        return sorted(({k: v for k, v in r.items() if k not in ("at", "wall_ms", "run_id")}
                       for r in rows), key=lambda r: (r["team"], r["item"]))

    def summary(out: Path) -> dict[str, Any]:
        data = on_disk(out)
        data.pop("started_at"), data.pop("finished_at")
        for team in data["teams"]:
            team.pop("latency_ms")
        return data

    assert records(tmp_path / "files") == records(tmp_path / "sql")
    first = (tmp_path / "sql" / "items.jsonl").read_text().splitlines()[0]
    assert list(json.loads(first)) == list(json.loads(
        (tmp_path / "files" / "items.jsonl").read_text().splitlines()[0]))  # field order too
    assert summary(tmp_path / "files") == summary(tmp_path / "sql")
    assert sorted(p.name for p in (tmp_path / "sql").iterdir()) == [
        ID_FILE, "items.jsonl", "summary.json"]


def test_cli_writes_rows_when_a_database_is_configured_and_reads_them_back(
        tmp_path: Path, examples: Path, db_url: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from concilium.settings import get_settings

    gvr = tmp_path / "gvr-llm.yaml"
    gvr.write_text("name: gvr-llm\nstrategy: gvr\nroles:\n  generator: {}\n  verifier: {}\n"
                   "  refiner: {}\n")
    out = tmp_path / "report"
    args = ["eval", str(examples / "single.yaml"), str(gvr), "-d", DATA, "-c", "3",
            "-m", "scripted/sql", "-o", str(out)]
    with scripted.use("sql", oracle()):
        plain_run = runner.invoke(app, [*args[:-1], str(tmp_path / "plain"), "-q"])
        assert plain_run.exit_code == 0, plain_run.output
        assert not (tmp_path / "plain" / ID_FILE).exists()  # no database set, memory off

        monkeypatch.setenv("CONCILIUM_DATABASE_URL", db_url)
        get_settings.cache_clear()
        refused = runner.invoke(app, [*args[:-1], str(tmp_path / "no"), "-q", "--no-sql"])
        assert refused.exit_code == 0 and not (tmp_path / "no" / ID_FILE).exists()
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    eval_id = read_eval_id(out)
    assert eval_id is not None and f"stored as evaluation {eval_id}" in result.stderr

    listed = runner.invoke(app, ["evals", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["stored"], row["items"], row["complete"]) == (eval_id, 20, 10, True)
    assert row["teams"] == ["single", "gvr-llm"] and row["out_dir"] == str(out.resolve())

    for ident in (str(out), eval_id, eval_id[:6]):
        shown = runner.invoke(app, ["evals", "show", ident, "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout) == on_disk(out)
    table = runner.invoke(app, ["evals", "show", eval_id])
    assert "single" in table.stdout and "gvr-llm" in table.stdout and "100.0%" in table.stdout
    assert "paired comparisons (McNemar)" in table.stdout
    items = runner.invoke(app, ["evals", "show", eval_id, "--items"])
    records = [json.loads(line) for line in items.stdout.splitlines()]
    on_file = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    key = lambda r: (r["team"], r["item"])  # noqa: E731
    assert sorted(records, key=key) == sorted(on_file, key=key)

    missing = runner.invoke(app, ["evals", "show", "nosuchid"])
    assert missing.exit_code == 2 and "no evaluation 'nosuchid'" in missing.stderr
    no_id = runner.invoke(app, ["evals", "show", str(tmp_path / "plain")])
    assert no_id.exit_code == 2 and "without --sql" in no_id.stderr


def test_an_unreachable_database_stops_the_eval_before_any_item(
        tmp_path: Path, examples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concilium.settings import get_settings

    monkeypatch.setenv("CONCILIUM_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/x")
    get_settings.cache_clear()
    with scripted.use("sql", oracle()) as script:
        result = runner.invoke(app, ["eval", str(examples / "single.yaml"), "-d", DATA,
                                     "-m", "scripted/sql", "-o", str(tmp_path / "o"), "-q"])
        assert script.count() == 0
    assert result.exit_code == 2 and "cannot open the ledger database" in result.stderr


@pytest.mark.postgres
def test_postgres_going_away_mid_run_is_a_warning_and_the_next_run_fills_the_rows(
        tmp_path: Path, examples: Path) -> None:
    data = load_dataset(DATA)
    out = tmp_path / "out"
    with pg_schema() as url:
        proxy = TcpProxy(target=("127.0.0.1", 5432))
        through = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        try:
            evaluation = Evaluation(teams(examples), data, out, EvalOptions(concurrency=2))
            evaluation.store = EvalStore.open(out, through)

            def cut(index: int, record: dict[str, Any]) -> None:
                if sum(s.tally.done for s in evaluation.slots) == 3:
                    proxy.stop()

            with scripted.use("sql", oracle()), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                asyncio.run(evaluation.run(cut))
                evaluation.write_summary()
            assert [w for w in caught if issubclass(w.category, EvalStoreWarning)]
            assert len((out / "items.jsonl").read_text().splitlines()) == 20
            assert count(url) < 20
        finally:
            proxy.stop()
            close_database(through)
        with scripted.use("sql", oracle()) as script:
            evaluate(teams(examples), data, out, url)
            assert script.count() == 0
        assert count(url) == 20 and from_sql(url, out) == on_disk(out)


def test_the_tables_are_what_the_models_say(db_url: str) -> None:  # noqa: F811
    """The migration and the ORM classes describe the same two tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from concilium.memory.models import Base

    db = open_database(db_url)
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                 Base.metadata)

    ours = [d for d in diffs if "eval" in repr(d)]
    assert ours == [], ours
