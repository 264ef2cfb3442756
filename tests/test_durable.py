"""Durable runs: LangGraph checkpoints, the call journal, and resuming a run that died.

The first tests crash a run inside this process (its task is cancelled, as Ctrl-C
would); the last one kills a real ``concilium run`` process with SIGKILL. In every
case the resumed run must end exactly like an uninterrupted one, with every model
call made once and every step in the ledger once.

A crash lands at an exact point however slow the machine: the test waits until the
calls before it are answered *and journaled* (an event it can see), while the next
call hangs (:func:`stalling`) until the run is cancelled or killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from interrupts import takes_ctrl_c
from memory_fixtures import db_url, memory  # noqa: F401
from sqlalchemy import text
from waiting import wait_for, wait_for_async

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.memory.db import Database, open_database
from concilium.memory.ledger import flush
from concilium.team import RunNotResumable, Team, resume_run

TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"


def gvr_llm(rounds: int = 6) -> dict[str, Any]:
    return {"name": "long-gvr", "strategy": "gvr",
            "limits": {"max_rounds": rounds, "max_llm_calls": 40},
            "roles": {"generator": {}, "verifier": {"check": "llm"}, "refiner": {}}}


def stubborn(latency_s: float = 0.02) -> scripted.Script:
    """A model whose verifier never accepts: a long, sequential run."""
    return scripted.Script(rules=[scripted.Rule("VERDICT: incorrect, check 17 * 24",
                                                role="verifier")],
                           default=WRONG, latency_s=latency_s)


STALL_S = 600.0
"""A call that hangs: the run is cancelled or killed long before it would end."""


def stalling(after: int) -> scripted.Script:
    """:func:`stubborn`, instant, except that every call after the first ``after`` hangs."""
    script = stubborn(latency_s=0.0)
    script.latency_s = lambda _call: STALL_S if script.count() >= after else 0.0
    return script


def sc(samples: int = 6) -> dict[str, Any]:
    return {"name": "long-sc", "strategy": {"name": "self_consistency", "samples": samples,
                                            "adaptive": True, "batch": 2},
            "roles": {"generator": {"temperature": 0.7}}}


async def crash_after(team: Team, script: scripted.Script, calls: int, run_id: str,
                      memory: Any = None) -> int:  # noqa: F811
    """Start a run, cancel it once ``calls`` model calls are answered and journaled.

    Returns the calls made. With a :func:`stalling` script that is exactly ``calls``:
    the next call hangs until the cancel.
    """
    db = memory.db if memory is not None else open_database()
    running = asyncio.create_task(team.arun(TASK, run_id=run_id, reference="411",
                                            memory=memory))
    # Checked and cancelled with no await in between: no call is answered meanwhile.
    await wait_for_async(lambda: script.count() >= calls
                         and journaled(db, run_id) == script.count(),
                         what=f"{calls} calls of run {run_id!r} answered and journaled",
                         task=running)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    return script.count()


def journaled(db: Database, run_id: str) -> int:
    """Calls of a run in its journal: committed, so a resume will not make them again."""
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM calls WHERE run_id = :r"),
                                {"r": run_id}).scalar() or 0)


def ledger_steps(run_id: str) -> list[dict[str, Any]]:
    flush()
    db = open_database()
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT uid, seq, node, round, role, output FROM steps "
                                 "WHERE run_id = :r ORDER BY seq"), {"r": run_id})
        return [dict(row._mapping) for row in rows]


async def test_a_crashed_run_resumes_without_repeating_a_call() -> None:
    team = load_team(gvr_llm(), model="scripted/dur1")
    with scripted.use("dur1", stubborn()) as whole:
        reference = await team.arun(TASK, reference="411")
    with scripted.use("dur1", stalling(5)) as first:
        made = await crash_after(team, first, 5, "crash-1")
    assert made == 5 < whole.count()
    with scripted.use("dur1", stubborn()) as second:
        result = await team.aresume("crash-1")
    # Every call the uninterrupted run made was made exactly once over the two processes.
    assert made + second.count() == whole.count() == result.usage.llm_calls
    assert result.status == "ok" and result.answer == reference.answer == "403"
    assert result.stop_reason == reference.stop_reason == "round limit (6) reached"
    assert [s["role"] for s in result.steps] == [s["role"] for s in reference.steps]
    assert result.usage.total_tokens == reference.usage.total_tokens
    steps = ledger_steps("crash-1")
    assert len(steps) == len(result.steps) == len({s["uid"] for s in steps})
    assert [s["role"] for s in steps] == [s["role"] for s in reference.steps]


async def test_checkpoints_live_in_the_ledgers_database(memory: Any) -> None:  # noqa: F811
    """SQLite: ``checkpoints.db`` beside the ledger; PostgreSQL: the ledger's own database."""
    team = load_team(gvr_llm(3), model="scripted/dur7")
    with scripted.use("dur7", stubborn()) as whole:
        reference = await team.arun(TASK, memory=memory, durable=True)
    with scripted.use("dur7", stalling(3)) as first:
        await crash_after(team, first, 3, "db-1", memory=memory)
    assert checkpoints(memory, "db-1") > 0  # the crashed run's checkpoints and journal
    with scripted.use("dur7", stubborn()) as second:
        result = await resume_run("db-1", memory=memory)
    assert first.count() + second.count() == whole.count() == result.usage.llm_calls
    assert result.answer == reference.answer and result.status == "ok"
    flush()
    # Finished: its checkpoints and journal are dropped (the ledger keeps every step).
    assert checkpoints(memory, "db-1") == 0
    with memory.db.engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM runs WHERE id = 'db-1'")).scalar()
        steps = conn.execute(text("SELECT count(*) FROM steps WHERE run_id = 'db-1'")).scalar()
    assert status == "ok" and steps == len(result.steps)


def checkpoints(mem: Any, run_id: str) -> int:
    """Checkpoint rows plus journal entries of a run, wherever the saver keeps them."""
    import sqlite3

    with mem.db.engine.connect() as conn:
        journal = conn.execute(text("SELECT count(*) FROM calls WHERE run_id = :r"),
                               {"r": run_id}).scalar()
        if mem.db.dialect == "postgresql":
            return int(journal) + int(conn.execute(text(
                "SELECT count(*) FROM checkpoints WHERE thread_id = :r"), {"r": run_id}).scalar())
    path = mem.db.sqlite_path.parent / "checkpoints.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        (rows,) = db.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?",
                             (run_id,)).fetchone()
    return int(journal) + int(rows)


async def test_a_live_run_cannot_be_resumed_twice(memory: Any) -> None:  # noqa: F811
    """While a run is alive (here, or in another process) a resume is refused; once it
    died, the claim is gone with it and the resume goes ahead."""
    from concilium.checkpoints import RunBusy

    team = load_team(gvr_llm(2), model="scripted/dur8")
    with scripted.use("dur8", stalling(2)) as first:  # alive, and stays so until cancelled
        running = asyncio.create_task(team.arun(TASK, run_id="busy-1", memory=memory))
        await wait_for_async(lambda: first.count() >= 2, what="2 calls of run 'busy-1'",
                             task=running)
        with pytest.raises(RunBusy, match="'busy-1' is running in another process"):
            await resume_run("busy-1", memory=memory)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    with scripted.use("dur8", stubborn()):
        result = await resume_run("busy-1", memory=memory)
    assert result.status == "ok" and result.stop_reason == "round limit (2) reached"


async def test_the_interrupted_task_is_answered_from_the_journal() -> None:
    """A node making several calls dies after some: those are replayed, not re-asked."""
    team = load_team(sc(samples=6), model="scripted/dur2")
    answers = [f"Answer: {n}" for n in (411, 403, 400, 411, 399, 411)]

    def reply(call: scripted.ScriptCall) -> str:
        return answers[int(call.params.get("seed", 0)) % len(answers)]

    with scripted.use("dur2", scripted.Script(default=reply, latency_s=0.01)) as whole:
        reference = await team.arun(TASK, reference="411")
    # Sample 2 answers at once, sample 3 hangs: the run dies between the two, in the
    # middle of the second batch (one LangGraph superstep).
    slow = scripted.Script(default=reply, latency_s=lambda call: STALL_S
                           if call.params.get("seed") == 3 else 0.01)
    with scripted.use("dur2", slow):
        made = await crash_after(team, slow, 3, "crash-2")
    assert made == 3
    with scripted.use("dur2", scripted.Script(default=reply)) as second:
        result = await team.aresume("crash-2")
    assert made + second.count() == whole.count()
    assert result.answer == reference.answer == "411"
    assert result.report.get("votes") == reference.report.get("votes")
    replayed = [s for s in result.steps if s.get("replayed")]
    assert all(s["kind"] == "llm" for s in replayed)
    assert len({s["id"] for s in result.steps}) == len(result.steps)
    assert len(ledger_steps("crash-2")) == len(result.steps)


async def test_a_run_cancelled_at_any_moment_leaves_the_checkpoints_writable() -> None:
    """Cancelling while the saver writes must not leave its write lock behind.

    Before the fix, a run cancelled mid-write left a zombie connection holding the
    SQLite write lock, so most later runs in the process failed "database is locked".
    Here 30 runs are cancelled at moments spread over a whole run; after each, another
    connection writes at once and the run resumes to the end.
    """
    import sqlite3

    from concilium.checkpoints import checkpoint_path
    from concilium.settings import get_settings

    team = load_team(sc(samples=6), model="scripted/dur9")
    path = checkpoint_path(get_settings().sqlalchemy_url())
    assert path is not None
    for moment in range(30):
        with scripted.use("dur9", scripted.Script(default="Answer: 411", latency_s=0.002)):
            running = asyncio.create_task(team.arun(TASK, run_id=f"any-{moment}"))
            # Not a guess that something happened: any moment will do, these are spread.
            await asyncio.sleep(moment * 0.002)
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        # A lock left behind is never released: 10 s tells it from a busy machine.
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as other:
            other.execute("CREATE TABLE IF NOT EXISTS probe (moment INTEGER)")
            other.execute("INSERT INTO probe VALUES (?)", (moment,))
            other.commit()
        with (scripted.use("dur9", scripted.Script(default="Answer: 411")),
              contextlib.suppress(RunNotResumable)):  # cancelled before its first step
            result = await team.aresume(f"any-{moment}")
            assert result.status == "ok" and result.answer == "411"


async def test_resume_rebuilds_the_team_from_its_checkpoint(tmp_path: Path) -> None:
    """``resume_run`` needs only the run id: the team and task come from the checkpoint."""
    path = tmp_path / "team.yaml"
    path.write_text("name: from-file\nstrategy: gvr\nlimits: {max_rounds: 3}\n"
                    "roles: {generator: {}, verifier: {check: llm}, refiner: {}}\n")
    team = load_team(path, model="scripted/dur3")
    with scripted.use("dur3", stalling(3)) as first:
        await crash_after(team, first, 3, "crash-3")
    path.write_text("this file changed after the run started: not: [valid")
    with scripted.use("dur3", stubborn()):
        result = await resume_run("crash-3")
    assert result.team == "from-file" and result.status == "ok"
    assert result.stop_reason == "round limit (3) reached" and result.reference == "411"
    assert result.task == TASK


async def test_a_run_without_a_checkpoint_is_not_resumable() -> None:
    with pytest.raises(RunNotResumable, match="no checkpoint of run 'nope'"):
        await resume_run("nope")
    team = load_team(gvr_llm(2), model="scripted/dur4")
    with scripted.use("dur4", stubborn()):
        await team.arun(TASK, run_id="not-durable", durable=False)
    with pytest.raises(RunNotResumable):
        await resume_run("not-durable")


async def test_a_users_own_saver_and_thread_id() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    team = load_team(gvr_llm(2), model="scripted/dur5")
    with scripted.use("dur5", stubborn()):
        result = await team.arun(TASK, run_id="mine", checkpointer=saver)
    snapshot = await team.compile(checkpointer=saver).aget_state(
        {"configurable": {"thread_id": "mine"}})
    assert snapshot.values["answer"]["value"] == result.answer == "403"
    assert len(snapshot.values["steps"]) == len(result.steps)


BUDGETS = {
    "calls": ({"max_llm_calls": 3}, "budget: max_llm_calls (3) reached", {"max_llm_calls": 40}),
    "tokens": ({"max_tokens": 150}, "budget: token budget (150) spent", {"max_tokens": 10_000}),
    "cost": ({"max_cost": 0.5}, "budget: cost budget ($0.5) spent", {"max_cost": 100.0}),
    "wall time": ({"timeout_s": 1.5}, "timeout (1.5 s)", {"timeout_s": 60.0}),
}


@pytest.mark.parametrize("kind", list(BUDGETS))
async def test_a_budget_stops_cleanly_and_the_run_can_go_on(kind: str) -> None:
    """Calls, tokens, cost or wall time run out: the run stops with its partial result and
    the reason; the ledger holds only whole steps, every paid call is journaled once, and
    ``resume_run`` with a bigger budget finishes it without repeating a call."""
    from concilium.agents.llm import register_price

    register_price("scripted/dur6", input_per_token=0.001, output_per_token=0.002)
    limits, reason, more_budget = BUDGETS[kind]
    team = load_team({**gvr_llm(4), "limits": {"max_rounds": 4, **limits}},
                     model="scripted/dur6")
    with scripted.use("dur6", stubborn(latency_s=0.3)) as script:
        stopped = await team.arun(TASK, run_id="budget-1")
    assert stopped.status == "stopped" and stopped.stop_reason == reason
    assert 1 <= script.count() == stopped.usage.llm_calls < 10
    assert stopped.answer == "403"  # the partial result: the last answer it had
    steps = ledger_steps("budget-1")
    assert len(steps) == len(stopped.steps) == script.count()
    assert all(s["output"] for s in steps)  # no step without its reply: nothing half-written
    db = open_database()
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT status, stop_reason, llm_calls FROM runs "
                                "WHERE id = 'budget-1'")).one()
        journal = conn.execute(text("SELECT count(*) FROM calls WHERE run_id = 'budget-1'"))
        assert journal.scalar() == script.count()  # every paid call journaled, nothing more
    assert tuple(row) == ("stopped", reason, script.count())
    if kind != "wall time":  # the same budget stops it again at once, calling nothing
        with scripted.use("dur6", stubborn()) as more:
            again = await resume_run("budget-1")
        assert again.status == "stopped" and more.count() == 0
    with scripted.use("dur6", stubborn()) as more:
        done = await resume_run("budget-1", limits=more_budget)
    # 1 generator + 4 x (verifier, refiner) + the last verifier, each call made once.
    assert done.status == "ok" and script.count() + more.count() == 10 == done.usage.llm_calls
    assert done.stop_reason == "round limit (4) reached"
    assert len(ledger_steps("budget-1")) == 10
    with pytest.raises(RunNotResumable, match="already finished"):
        await resume_run("budget-1")


SCRIPT = """\
log: calls.jsonl
rules:
  - role: verifier
    reply: "VERDICT: incorrect, check 17 * 24"
default: "17 * 24 = 400. 400 + 3 = 403.\\nAnswer: 403"
"""

CLI = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
STALLING_CLI = f"""\
import sys
from concilium.agents.providers import scripted
name, after = sys.argv.pop(1), int(sys.argv.pop(1))
script = scripted.get(name)  # from CONCILIUM_SCRIPTS_DIR, logging every answered call
script.latency_s = lambda _call: {STALL_S} if script.count() >= after else 0.0
{CLI}
"""


def concilium(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stalled_concilium(model: str, after: int, *args: str,
                      env: dict[str, str]) -> subprocess.Popen[str]:
    """``concilium ARGS`` whose scripted model hangs on every call after the first ``after``."""
    return subprocess.Popen(takes_ctrl_c([sys.executable, "-c", STALLING_CLI, model, str(after),
                                          *args]),
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def journal_rows(home: Path, run_id: str) -> int:
    """Calls of ``run_id`` committed to the journal of the SQLite ledger under ``home``."""
    import sqlite3

    path = home / "concilium.db"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        try:
            (rows,) = db.execute("SELECT count(*) FROM calls WHERE run_id = ?",
                                 (run_id,)).fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0
    return int(rows)


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    """Kill -9 a real ``concilium run`` mid-way; ``concilium runs resume`` finishes it."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "slow.yaml").write_text(SCRIPT)
    team = tmp_path / "team.yaml"
    team.write_text(json.dumps({**gvr_llm(12), "model": "scripted/slow"}))
    home = tmp_path / "home"
    env = {**os.environ, "CONCILIUM_HOME": str(home),
           "CONCILIUM_SCRIPTS_DIR": str(scripts), "CONCILIUM_REDIS_URL": ""}
    env.pop("CONCILIUM_DATABASE_URL", None)
    log = scripts / "calls.jsonl"

    # Six calls answered, the seventh hangs: the process is alive, in the middle of a call.
    first = stalled_concilium("slow", 6, "run", str(team), TASK, "--run-id", "killme", "-q",
                              env=env)
    try:
        wait_for(lambda: journal_rows(home, "killme") >= 6, process=first,
                 what="6 calls of run 'killme' in its journal")
        busy = concilium("runs", "resume", "killme", env=env)  # it is alive: refused
        _, busy_err = busy.communicate(timeout=600)
        assert busy.returncode == 2 and "is running in another process" in busy_err, busy_err
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=600)
    assert first.returncode == -signal.SIGKILL
    assert calls(log) == 6

    second = concilium("runs", "resume", "killme", "--json", env=env)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    result = json.loads(out)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # 1 generator + 12 x (verifier, refiner) + the last verifier: 26 calls, each made once.
    assert len(lines) == 26 == result["usage"]["llm_calls"] == len(result["steps"])
    assert result["status"] == "ok" and result["answer"] == "403"
    assert result["stop_reason"] == "round limit (12) reached"
    assert [s["role"] for s in result["steps"]] == (
        ["generator"] + ["verifier", "refiner"] * 12 + ["verifier"])

    shown = concilium("runs", "show", "killme", "--json", env=env)
    ledger = json.loads(shown.communicate(timeout=600)[0])
    assert ledger["status"] == "ok" and ledger["llm_calls"] == 26
    uids = [s["uid"] for s in ledger["steps"]]
    assert len(uids) == 26 == len(set(uids))
    assert sorted(uids) == sorted(s["id"] for s in result["steps"])


def test_ctrl_c_says_how_to_resume_and_resume_finishes(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "slow.yaml").write_text(SCRIPT)
    team = tmp_path / "team.yaml"
    team.write_text(json.dumps({**gvr_llm(2), "model": "scripted/slow"}))
    home = tmp_path / "home"
    env = {**os.environ, "CONCILIUM_HOME": str(home),
           "CONCILIUM_SCRIPTS_DIR": str(scripts), "CONCILIUM_REDIS_URL": ""}
    env.pop("CONCILIUM_DATABASE_URL", None)
    log = scripts / "calls.jsonl"
    # Two calls answered and journaled, the third hangs: Ctrl-C lands in the middle of it.
    first = stalled_concilium("slow", 2, "run", str(team), TASK, "--run-id", "ctrl-c", env=env)
    try:
        wait_for(lambda: journal_rows(home, "ctrl-c") >= 2, process=first,
                 what="2 calls of run 'ctrl-c' in its journal")
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=600)
    assert first.returncode == 130, err
    assert "interrupted; finish it with: concilium runs resume ctrl-c" in err
    assert "Traceback" not in err
    assert calls(log) == 2
    second = concilium("runs", "resume", "ctrl-c", "--json", env=env)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    # 1 generator + 2 x (verifier, refiner) + the last verifier, each made once.
    assert json.loads(out)["usage"]["llm_calls"] == 6 == calls(log)
    third = concilium("runs", "resume", "ctrl-c", env=env)
    _, err = third.communicate(timeout=600)
    assert third.returncode == 2 and "already finished" in err and "Traceback" not in err


def test_a_call_key_without_messages_hashes_an_empty_list() -> None:
    """A step's key (no messages) skips the JSON dump but hashes the same bytes, so the ids
    of steps in ledgers and journals written before stay the ids a resume computes."""
    import hashlib

    from concilium.memory.journal import call_key

    digest = hashlib.sha256()
    for part in ("run", "scope", "step", 0):
        digest.update(str(part).encode("utf-8") + b"\x1f")
    digest.update(b"[]")
    assert call_key("run", "scope", "step", 0) == digest.hexdigest()[:40]
    assert call_key("run", "scope", "step", 0, messages=[]) == digest.hexdigest()[:40]
    assert call_key("r", messages=[{"role": "user", "content": "x"}]) != call_key("r")
