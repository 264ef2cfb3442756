"""Eight ``concilium run`` processes start together on a new database, and bad databases.

On an empty database every process wants to create the schema at the same moment:
the ledger's migrations and the LangGraph saver's tables. Before the schema lock, one
of eight PostgreSQL runs died with ``UniqueViolation ... checkpoint_migrations_pkey``
(the saver's ``setup()`` raced). Now every run must end ok and land in the ledger
once, with each of its steps once. A database that cannot be opened is one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from memory_fixtures import pg_schema
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from waiting import wait_for

RUNS = 8
TASK = "What is 17 * 24 + 3?"
TEAM = {"name": "first-runs", "strategy": "gvr", "model": "scripted/first",
        "limits": {"max_rounds": 2},
        "roles": {"generator": {}, "verifier": {"check": "llm"}, "refiner": {}}}
STEPS = ["generator", "verifier", "refiner", "verifier", "refiner", "verifier"]
SCRIPT = """\
rules:
  - role: verifier
    reply: "VERDICT: incorrect, check 17 * 24"
default: "17 * 24 = 400. 400 + 3 = 403.\\nAnswer: 403"
"""
# Everything is imported before the start line, so the runs reach the database together.
AT_THE_LINE = """\
import sys, time
from pathlib import Path
ready, go = Path(sys.argv.pop(1)), Path(sys.argv.pop(1))
from concilium.cli.app import main
import concilium.checkpoints, concilium.memory.store, concilium.team
from concilium.agents.llm import litellm_module
litellm_module()
ready.touch()
deadline = time.monotonic() + 600
while not go.exists():  # the start signal
    if time.monotonic() > deadline:
        sys.exit("no start signal in 600 s")
    time.sleep(0.005)
sys.argv[0] = "concilium"
main()
"""


def _env(tmp_path: Path, url: str | None) -> dict[str, str]:
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "first.yaml").write_text(SCRIPT)
    env = {**os.environ, "CONCILIUM_HOME": str(tmp_path / "home"),
           "CONCILIUM_SCRIPTS_DIR": str(scripts), "CONCILIUM_REDIS_URL": ""}
    env.pop("CONCILIUM_DATABASE_URL", None)
    if url is not None:
        env["CONCILIUM_DATABASE_URL"] = url
    return env


def _first_runs(tmp_path: Path, url: str | None) -> str:
    """Start RUNS ``concilium run`` processes together on ``url``; the ledger's URL."""
    env = _env(tmp_path, url)
    team = tmp_path / "team.yaml"
    team.write_text(json.dumps(TEAM))
    go = tmp_path / "go"
    runs = [subprocess.Popen(
        [sys.executable, "-c", AT_THE_LINE, str(tmp_path / f"ready-{n}"), str(go), "run",
         str(team), TASK, "--run-id", f"first-{n}", "--json"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(RUNS)]
    try:
        for n, run in enumerate(runs):
            wait_for(lambda n=n: (tmp_path / f"ready-{n}").exists(), process=run,
                     what=f"run {n} at the start line")
        go.touch()
        for n, run in enumerate(runs):
            out, err = run.communicate(timeout=600)
            assert run.returncode == 0 and "Traceback" not in err, f"run {n}: {err[-3000:]}"
            result = json.loads(out)
            assert result["status"] == "ok" and result["answer"] == "403"
            assert [s["role"] for s in result["steps"]] == STEPS
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.communicate()
    return url or f"sqlite:///{(tmp_path / 'home' / 'concilium.db').as_posix()}"


def _assert_every_run_and_step_once(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT id, status, llm_calls FROM runs "
                                     "ORDER BY id")).all()
            steps = conn.execute(text("SELECT run_id, seq, uid, role FROM steps "
                                      "ORDER BY run_id, seq")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in runs] == [(f"first-{n}", "ok", 6) for n in range(RUNS)]
    for n in range(RUNS):
        mine = [s for s in steps if s.run_id == f"first-{n}"]
        assert [s.role for s in mine] == STEPS and [s.seq for s in mine] == [1, 2, 3, 4, 5, 6]
    assert len({s.uid for s in steps}) == len(steps) == RUNS * len(STEPS)


def test_eight_first_runs_on_a_new_sqlite_database(tmp_path: Path) -> None:
    _assert_every_run_and_step_once(_first_runs(tmp_path, None))


@pytest.mark.postgres
def test_eight_first_runs_on_a_new_postgresql_database(tmp_path: Path) -> None:
    with pg_schema() as url:
        _assert_every_run_and_step_once(_first_runs(tmp_path, url))
        schema = unquote(url).rsplit("search_path=", 1)[1]
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                # The saver's tables are in the run's own schema (its search_path) ...
                tables = conn.execute(text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                    "AND table_name LIKE 'checkpoint%' ORDER BY 1"), {"s": schema}).scalars()
                # ... and each of its migrations was recorded once.
                versions = conn.execute(text("SELECT v FROM checkpoint_migrations ORDER BY v"))
                assert list(tables) == ["checkpoint_blobs", "checkpoint_migrations",
                                        "checkpoint_writes", "checkpoints"]
                from langgraph.checkpoint.postgres.base import BasePostgresSaver

                assert list(versions.scalars()) == list(range(len(BasePostgresSaver.MIGRATIONS)))
        finally:
            engine.dispose()


def _refused_port() -> int:
    """A local port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("case", "checkpoint"), [
    ("postgresql unreachable", "true"),
    ("postgresql unreachable", "false"),
    ("not a url", "true"),
    ("sqlite directory is a file", "true"),
    ("sqlite checkpoint file is a directory", "true"),
])
def test_a_database_error_at_start_is_one_line(tmp_path: Path, case: str,
                                                checkpoint: str) -> None:
    """The saver's database (checkpoints on) or the ledger's (off) cannot be opened."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    url = {"postgresql unreachable":
           f"postgresql+psycopg://postgres@127.0.0.1:{_refused_port()}/test",
           "not a url": "nonsense",
           "sqlite directory is a file": f"sqlite:///{blocker}/concilium.db",
           "sqlite checkpoint file is a directory": f"sqlite:///{tmp_path}/db/concilium.db",
           }[case]
    (tmp_path / "db" / "checkpoints.db").mkdir(parents=True)
    env = {**_env(tmp_path, url), "CONCILIUM_CHECKPOINT": checkpoint}
    team = tmp_path / "team.yaml"
    team.write_text(json.dumps(TEAM))
    done = subprocess.run([sys.executable, "-c", AT_THE_LINE, str(tmp_path / "ready"),
                           str(tmp_path / "ready"), "run", str(team), TASK, "-q"],
                          env=env, text=True, capture_output=True, timeout=600)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "database" in lines[0] or "URL" in lines[0], lines[0]
