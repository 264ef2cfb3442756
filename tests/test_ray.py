"""Batch and eval on a real Ray cluster, inside a loopback-only network namespace.

Each test runs its body (the ``case_*`` functions below) as ``python tests/test_ray.py
CASE DIR`` under ``ip netns exec``: a local Ray cluster (2 CPUs, 80 MB object store,
no dashboard), an OpenAI-compatible model server of its own (``fake_server``), and
the ledger in a fresh PostgreSQL schema reached through the unix socket. No mocks
of Ray; the kill test kills a real actor process mid-item.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TEAM = {"name": "plus", "strategy": "single", "model": "openai/fake", "roles": {"generator": {}}}
RAY_INIT = {"num_cpus": 2, "object_store_memory": 80 * 1024**2}


# ---------------------------------------------------------------- the pytest side


def _socket_url(url: str) -> str:
    from netns import PG_SOCKET_URL

    return PG_SOCKET_URL + "&" + url.split("?", 1)[1]


def _run_case(case: str, tmp_path: Path, timeout_s: float = 900.0) -> dict[str, Any]:
    from memory_fixtures import pg_schema
    from netns import run_in_netns

    with pg_schema() as url:
        done = run_in_netns([str(HERE / "test_ray.py"), case, str(tmp_path)],
                            env={"CONCILIUM_DATABASE_URL": _socket_url(url),
                                 "CONCILIUM_HOME": str(tmp_path / ".concilium")},
                            timeout_s=timeout_s)
    assert done.returncode == 0, f"{case} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    return dict(json.loads(line.removeprefix("RESULT ")))


def test_batch_on_a_local_ray_cluster_matches_the_local_batch(tmp_path: Path) -> None:
    got = _run_case("batch", tmp_path)
    assert got["ray"] == got["local"]
    assert got["ids"] == [f"t{i}" for i in range(8)] and got["all_correct"]
    assert got["workers_used"] == 2 and got["ledger_runs"] == 8
    assert got["rerun_pending"] == 0


def test_eval_cli_on_ray_writes_what_a_local_eval_writes(tmp_path: Path) -> None:
    got = _run_case("eval", tmp_path)
    assert got["items_equal"], got["differ"]
    assert got["summary_equal"], got["summary_differ"]
    assert got["accuracy"] == 1.0
    assert got["sql_equal"] and got["sql_rows"] == 12  # one row per (team, item), from the driver


def test_a_killed_worker_s_item_is_rerun_and_lands_once(tmp_path: Path) -> None:
    got = _run_case("kill", tmp_path)
    assert got["killed_pid"] not in got["pids_after"]
    assert got["ids"] == [f"t{i}" for i in range(4)] and got["all_correct"]
    assert got["ledger_runs"] == 4 and got["ledger_ok"] == 4
    assert got["steps_per_run"] == [1, 1, 1, 1]


def test_a_killed_worker_s_eval_item_lands_once_in_the_files_and_in_sql(tmp_path: Path) -> None:
    got = _run_case("eval_kill", tmp_path)
    assert got["killed_pid"] not in got["pids_after"]
    assert got["lines"] == 4 and got["items"] == 4 and got["all_correct"]
    assert got["sql_rows"] == 4 and got["sql_equal"]


def test_ctrl_c_cancels_ray_tasks_and_a_rerun_finishes(tmp_path: Path) -> None:
    got = _run_case("interrupt", tmp_path)
    assert got["exit_code"] == 130 and 0 < got["partial"] < 12
    assert got["partial_valid"]
    assert got["final_ids"] == 12 and got["final_lines"] == 12


def test_two_node_cluster_refuses_sqlite_and_runs_on_postgres(tmp_path: Path) -> None:
    got = _run_case("cluster", tmp_path)
    assert "SQLite" in got["sqlite_error"] and "PostgreSQL" in got["sqlite_error"]
    assert got["nodes"] == 2 and got["nodes_used"] == 2
    assert got["ids"] == 6 and got["all_correct"]


# ---------------------------------------------------------------- the body (in the netns)


def _server(tmp: Path, delay_s: float) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "concilium.scale.fake_server", "--port", "0", "--delay",
         str(delay_s), "--log", str(tmp / "calls.log")], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())  # the server prints its port once it listens
    os.environ["OPENAI_API_BASE"] = f"http://127.0.0.1:{port}/v1"
    os.environ["OPENAI_BASE_URL"] = os.environ["OPENAI_API_BASE"]
    os.environ["OPENAI_API_KEY"] = "test-key"
    return server


def _tasks(tmp: Path, n: int) -> Path:
    path = tmp / "tasks.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{i}", "task": f"What is {i} plus one?",
                                        "reference": str(i + 1)}) + "\n" for i in range(n)))
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


STABLE_DROP = {"wall_ms", "at", "latency_ms", "run_id"}


def _stable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in STABLE_DROP}


def _ledger() -> dict[str, Any]:
    from sqlalchemy import text

    from concilium.memory import Memory
    from concilium.memory.ledger import flush

    flush(10.0)
    with Memory.open().db.write_engine.connect() as conn:
        runs = conn.execute(text("SELECT id, status FROM runs ORDER BY id")).all()
        steps = conn.execute(text("SELECT run_id, count(*) FROM steps GROUP BY run_id "
                                  "ORDER BY run_id")).all()
    return {"runs": len(runs), "ok": sum(1 for r in runs if r[1] == "ok"),
            "steps": [int(s[1]) for s in steps]}


def _wait_for(predicate: Any, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"waited {deadline_s} s for {what}")
        time.sleep(0.02)


def case_batch(tmp: Path) -> dict[str, Any]:
    from concilium.memory import Memory
    from concilium.scale import Batch, BatchOptions
    from concilium.scale.driver import drive_batch
    from concilium.scale.pool import connect
    from concilium.team import load_team

    server = _server(tmp, 0.05)
    try:
        Memory.open()  # migrate once, before the workers
        tasks = _tasks(tmp, 8)
        local = Batch(load_team(TEAM), tasks, tmp / "local.jsonl", BatchOptions(seed=1))
        asyncio.run(local.run())
        connect("auto", **RAY_INIT)
        ray_batch = Batch(load_team(TEAM), tasks, tmp / "ray.jsonl", BatchOptions(concurrency=2))
        pools: list[Any] = []
        asyncio.run(drive_batch(ray_batch, ray="auto", workers=2, on_pool=pools.append))
        records = sorted(_lines(tmp / "ray.jsonl"), key=lambda r: r["id"])
        local_records = sorted(_lines(tmp / "local.jsonl"), key=lambda r: r["id"])
        rerun = Batch(load_team(TEAM), tasks, tmp / "ray.jsonl")
        ledger = _ledger()
        return {"ray": [_stable(r) | {"attempt": 0} for r in records],
                "local": [_stable(r) | {"attempt": 0} for r in local_records],
                "ids": [r["id"] for r in records],
                "all_correct": all(r["correct"] for r in records),
                "workers_used": sum(1 for s in pools[0].stats if s.done > 0),
                "ledger_runs": ledger["runs"] - 8,  # the local batch's runs are there too
                "rerun_pending": len(rerun.pending)}
    finally:
        server.kill()


def case_eval(tmp: Path) -> dict[str, Any]:
    from concilium.eval.datasets import load_dataset
    from concilium.eval.runner import EvalOptions, Evaluation
    from concilium.team import load_team

    server = _server(tmp, 0.02)
    try:
        data_path = tmp / "data.jsonl"
        data_path.write_text("".join(json.dumps({"question": f"What is {i} plus one?",
                                                 "answer": str(i + 1)}) + "\n"
                                     for i in range(6)))
        data = load_dataset(str(data_path))
        files = []
        for name in ("plus", "plus2"):
            files.append(tmp / f"{name}.yaml")
            files[-1].write_text(json.dumps({**TEAM, "name": name}))
        teams = [load_team(f) for f in files]
        local = Evaluation(teams, data, tmp / "local", EvalOptions(concurrency=4))
        asyncio.run(local.run())
        local_summary = local.write_summary()
        # the same evaluation through the command line, on a local Ray cluster
        command = [sys.executable, "-m", "concilium.cli.app", "eval", *map(str, files),
                   "--dataset", str(data_path), "--out", str(tmp / "ray"), "-c", "4",
                   "--ray", "auto", "--workers", "2", "-q"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        ray_summary = json.loads((tmp / "ray" / "summary.json").read_text())
        # the driver also wrote the results to the database (CONCILIUM_DATABASE_URL is set)
        from sqlalchemy import text

        from concilium.eval.store import read_eval_id, stored_summary
        from concilium.memory.db import open_database

        eval_id = read_eval_id(tmp / "ray")
        assert eval_id is not None, "the Ray eval stored no evaluation id"
        sql_summary = json.loads(json.dumps(stored_summary(open_database(), eval_id)[1]))
        with open_database().engine.connect() as conn:
            sql_rows = conn.execute(text("SELECT count(*) FROM eval_results")).scalar()

        def items(path: Path) -> list[dict[str, Any]]:
            rows = [_stable(r) for r in _lines(path / "items.jsonl")]
            return sorted(rows, key=lambda r: (r["team"], r["item"]))

        def summary(data: dict[str, Any]) -> dict[str, Any]:
            data = json.loads(json.dumps(data))
            data.pop("started_at"), data.pop("finished_at")
            for team in data["teams"]:
                team.pop("latency_ms")
            return data

        pairs = zip(items(tmp / "local"), items(tmp / "ray"), strict=True)
        differ = [{k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
                  for a, b in pairs if a != b]
        return {"items_equal": not differ, "differ": differ[:2],
                "summary_differ": [k for k in summary(local_summary)
                                   if summary(local_summary)[k] != summary(ray_summary)[k]],
                "summary_equal": summary(local_summary) == summary(ray_summary),
                "accuracy": ray_summary["teams"][0]["accuracy"],
                "sql_equal": sql_summary == ray_summary, "sql_rows": sql_rows}
    finally:
        server.kill()


def case_kill(tmp: Path) -> dict[str, Any]:
    from concilium.memory import Memory
    from concilium.scale import Batch, BatchOptions
    from concilium.scale.driver import drive_batch
    from concilium.scale.pool import connect
    from concilium.team import load_team

    server = _server(tmp, 1.0)  # a call takes 1 s: long enough to kill a worker mid-item
    try:
        Memory.open()
        connect("auto", **RAY_INIT)
        batch = Batch(load_team(TEAM), _tasks(tmp, 4), tmp / "out.jsonl",
                      BatchOptions(concurrency=2))
        killed = asyncio.run(_kill_the_worker_mid_item(
            tmp, lambda on_pool: drive_batch(batch, ray="auto", workers=1, on_pool=on_pool)))
        records = sorted(_lines(tmp / "out.jsonl"), key=lambda r: r["id"])
        ledger = _ledger()
        return {"killed_pid": killed["pid"], "pids_after": killed["after"],
                "ids": [r["id"] for r in records],
                "all_correct": all(r["correct"] for r in records),
                "ledger_runs": ledger["runs"], "ledger_ok": ledger["ok"],
                "steps_per_run": ledger["steps"]}
    finally:
        server.kill()


def case_eval_kill(tmp: Path) -> dict[str, Any]:
    from sqlalchemy import text

    from concilium.eval.datasets import load_dataset
    from concilium.eval.runner import EvalOptions, Evaluation
    from concilium.eval.store import EvalStore, stored_summary
    from concilium.memory.db import open_database
    from concilium.scale.driver import drive_eval
    from concilium.scale.pool import connect
    from concilium.team import load_team

    server = _server(tmp, 1.0)  # a call takes 1 s: long enough to kill a worker mid-item
    try:
        data_path = tmp / "data.jsonl"
        data_path.write_text("".join(json.dumps({"question": f"What is {i} plus one?",
                                                 "answer": str(i + 1)}) + "\n"
                                     for i in range(4)))
        connect("auto", **RAY_INIT)
        teams = [load_team(TEAM)]
        evaluation = Evaluation(teams, load_dataset(str(data_path)), tmp / "out",
                                EvalOptions(concurrency=2))
        evaluation.store = EvalStore.open(evaluation.out_dir)
        killed = asyncio.run(_kill_the_worker_mid_item(
            tmp, lambda on_pool: drive_eval(evaluation, teams, ray="auto", workers=1,
                                            on_pool=on_pool)))
        summary = evaluation.write_summary()
        lines = _lines(tmp / "out" / "items.jsonl")
        with open_database().engine.connect() as conn:
            sql_rows = conn.execute(text("SELECT count(*) FROM eval_results")).scalar()
        assert evaluation.store is not None
        stored = stored_summary(open_database(), evaluation.store.eval_id)[1]
        return {"killed_pid": killed["pid"], "pids_after": killed["after"],
                "lines": len(lines), "items": len({r["item"] for r in lines}),
                "all_correct": all(r["correct"] for r in lines), "sql_rows": sql_rows,
                "sql_equal": json.loads(json.dumps(stored)) == json.loads(json.dumps(summary))}
    finally:
        server.kill()


async def _kill_the_worker_mid_item(
    tmp: Path, drive: Callable[[Callable[[Any], None]], Awaitable[Any]],
) -> dict[str, Any]:
    """Run ``drive(on_pool)`` on one worker, SIGKILL that worker's process once the model
    server has logged a call (an item is in flight), and let the run finish.

    Returns the killed pid (``pid``) and the pool's worker pids afterwards (``after``).
    """
    pools: list[Any] = []
    running = asyncio.create_task(drive(pools.append))
    log = tmp / "calls.log"
    while not (log.exists() and log.read_text().strip()):  # an item is in flight
        await asyncio.sleep(0.02)
        if running.done():
            break
    pool = pools[0]
    [pid] = await pool.pids()
    os.kill(pid, signal.SIGKILL)
    await running
    return {"pid": pid, "after": list(await pool.pids()) if pool.actors else []}


def case_interrupt(tmp: Path) -> dict[str, Any]:
    from interrupts import takes_ctrl_c

    from concilium.memory import Memory

    server = _server(tmp, 0.3)
    try:
        Memory.open()
        tasks = _tasks(tmp, 12)
        team = tmp / "plus.yaml"
        team.write_text(json.dumps(TEAM))
        out = tmp / "out.jsonl"
        command = [sys.executable, "-m", "concilium.cli.app", "batch", str(team), "-i",
                   str(tasks), "-o", str(out), "--ray", "auto", "--workers", "1", "-c", "2", "-q"]
        env = {**os.environ, "RAY_ADDRESS": ""}
        driver = subprocess.Popen(takes_ctrl_c(command), env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, 120,
                  "two finished records")
        driver.send_signal(signal.SIGINT)  # Ctrl-C
        driver.communicate(timeout=120)
        partial = out.read_text().splitlines()
        valid = all(json.loads(line)["status"] == "ok" for line in partial)
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stderr
        final = _lines(out)
        return {"exit_code": driver.returncode, "partial": len(partial), "partial_valid": valid,
                "final_ids": len({r["id"] for r in final}), "final_lines": len(final)}
    finally:
        server.kill()


def case_cluster(tmp: Path) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from concilium.errors import ConfigError
    from concilium.memory import Memory
    from concilium.scale import Batch, BatchOptions
    from concilium.scale.driver import drive_batch
    from concilium.scale.pool import Pool, check_database
    from concilium.team import load_team

    server = _server(tmp, 0.05)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 80 * 1024**2, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 1024**2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        try:
            check_database("sqlite:///" + str(tmp / "x.db"))
            sqlite_error = ""
        except ConfigError as error:
            sqlite_error = str(error)
        Memory.open()
        batch = Batch(load_team(TEAM), _tasks(tmp, 6), tmp / "out.jsonl",
                      BatchOptions(concurrency=2))
        pools: list[Pool] = []
        nodes: list[str] = []

        def seen(pool: Pool) -> None:
            pools.append(pool)

        async def main() -> None:
            running = asyncio.create_task(drive_batch(batch, ray="auto", workers=2,
                                                      on_pool=seen))
            while not pools:
                await asyncio.sleep(0.01)
            await pools[0].ready()
            for actor in pools[0].actors:
                nodes.append(await actor.node.remote())
            await running

        asyncio.run(main())
        records = _lines(tmp / "out.jsonl")
        return {"sqlite_error": sqlite_error,
                "nodes": len([n for n in ray.nodes() if n["Alive"]]),
                "nodes_used": len(set(nodes)), "ids": len({r["id"] for r in records}),
                "all_correct": all(r["correct"] for r in records)}
    finally:
        ray.shutdown()
        cluster.shutdown()
        server.kill()


if __name__ == "__main__":
    case, directory = sys.argv[1], Path(sys.argv[2])
    print("RESULT " + json.dumps(globals()[f"case_{case}"](directory)), flush=True)
