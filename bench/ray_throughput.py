"""Batch throughput on Ray with 1 and 2 warm workers, beside the in-process runner.

One team (``single``: one model call per task) runs ``--tasks`` tasks against a
real OpenAI-compatible HTTP server (``concilium.scale.fake_server``) that answers
each call after ``--delay`` seconds, like a busy model server. The same batch runs
three ways in one process tree, one after the other:

- in-process: ``Batch`` with ``--concurrency`` tasks in flight;
- Ray, 1 worker: one warm actor with ``--concurrency`` tasks in flight;
- Ray, 2 workers: two actors, ``--concurrency`` each.

Every run is durable (checkpoints and the ledger in PostgreSQL, a fresh schema
through the unix socket), as a batch runs for real. With ``C`` tasks in flight per
process and one call of ``d`` seconds per task, Little's law bounds one process at
``C / d`` tasks/s; below it, each process is limited by the CPU one task costs
(graph, litellm, ledger, checkpoints). Two workers on two cores double that CPU.

Target: 2 workers >= 1.6 x 1 worker.

Ray must stay on loopback here, so the benchmark re-runs itself inside a fresh
network namespace with only ``lo`` up (root and ``ip netns`` needed).

Usage: ``python bench/ray_throughput.py [--tasks 300] [--concurrency 16] [--delay 0.1]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.6
PG_SOCKET = "postgresql+psycopg://postgres@/test?host=/var/run/postgresql"
TEAM = {"name": "single", "strategy": "single", "model": "openai/fake",
        "roles": {"generator": {}}}


def in_netns() -> int:
    """Re-run this script in a loopback-only network namespace; remove it afterwards."""
    name = f"cnc-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)
        env = {**os.environ, "CNC_BENCH_INSIDE": "1", "RAY_ADDRESS": "",
               "PYTHONPATH": str(ROOT)}
        return subprocess.run(["ip", "netns", "exec", name, sys.executable, *sys.argv],
                              env=env).returncode
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name])


@contextlib.contextmanager
def fresh_schema() -> Any:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    schema = "concilium_bench_" + uuid.uuid4().hex[:8]
    admin = create_engine(PG_SOCKET, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_SOCKET}&options=-csearch_path%3D{schema}"
    finally:
        from concilium.memory.db import close_database
        from concilium.memory.ledger import flush

        flush(30.0)
        close_database()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def tasks_file(directory: Path, n: int, tag: str) -> Path:
    path = directory / f"tasks-{tag}.jsonl"
    path.write_text("".join(json.dumps({"id": f"{tag}{i}", "task": f"What is {i} plus one?",
                                        "reference": str(i + 1)}) + "\n" for i in range(n)))
    return path


def measure(directory: Path, args: argparse.Namespace, workers: int | None) -> dict[str, Any]:
    """Tasks per second of one batch (``workers=None``: in this process)."""
    from concilium.scale import Batch, BatchOptions
    from concilium.scale.driver import drive_batch
    from concilium.team import load_team

    tag = "local" if workers is None else f"ray{workers}"
    batch = Batch(load_team(TEAM), tasks_file(directory, args.tasks, tag),
                  directory / f"out-{tag}.jsonl", BatchOptions(concurrency=args.concurrency))
    pools: list[Any] = []
    started: list[float] = []

    async def main() -> None:
        if workers is None:
            started.append(time.perf_counter())
            await batch.run()
            return
        # the clock starts once the actors are warm (drive_batch waits for them)
        original = batch.run

        async def timed_run(*a: Any, **k: Any) -> None:
            started.append(time.perf_counter())
            await original(*a, **k)

        batch.run = timed_run  # type: ignore[method-assign]
        await drive_batch(batch, ray="auto", workers=workers, on_pool=pools.append)

    asyncio.run(main())
    seconds = time.perf_counter() - started[0]
    records = [json.loads(x) for x in batch.output_path.read_text().splitlines()]
    ok = sum(1 for r in records if r["status"] == "ok" and r["correct"])
    bound = args.concurrency * (workers or 1) / args.delay
    return {"how": "in-process" if workers is None else f"Ray, {workers} worker(s)",
            "rate": len(records) / seconds, "ok": ok, "bound": bound, "seconds": seconds}


def inside(args: argparse.Namespace) -> None:
    import tempfile

    server = subprocess.Popen([sys.executable, "-m", "concilium.scale.fake_server", "--port",
                               "0", "--delay", str(args.delay)], stdout=subprocess.PIPE,
                              text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    os.environ.update({"OPENAI_API_BASE": f"http://127.0.0.1:{port}/v1",
                       "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
                       "OPENAI_API_KEY": "bench", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    try:
        with tempfile.TemporaryDirectory() as tmp, fresh_schema() as url:
            os.environ["CONCILIUM_DATABASE_URL"] = url
            os.environ["CONCILIUM_HOME"] = str(Path(tmp) / ".concilium")
            from concilium.scale.pool import connect

            rows = [measure(Path(tmp), args, None)]
            connect("auto", num_cpus=2, object_store_memory=80 * 1024**2)
            rows.append(measure(Path(tmp), args, 1))
            rows.append(measure(Path(tmp), args, 2))
            import ray

            ray.shutdown()
    finally:
        server.kill()
    print(f"{args.tasks} tasks, {args.concurrency} in flight per process, "
          f"{args.delay:g} s per call, {os.cpu_count()} cores")
    print(f"{'how':<22} {'tasks/s':>8} {'bound':>8} {'of bound':>9} {'right':>6}")
    for row in rows:
        print(f"{row['how']:<22} {row['rate']:>8.1f} {row['bound']:>8.0f} "
              f"{row['rate'] / row['bound']:>8.0%} {row['ok']:>6}")
    ratio = rows[2]["rate"] / rows[1]["rate"]
    verdict = "meets" if ratio >= TARGET else "misses"
    print(f"2 workers / 1 worker = {ratio:.2f}x ({verdict} the {TARGET}x target)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args()
    if os.environ.get("CNC_BENCH_INSIDE") != "1":
        raise SystemExit(in_netns())
    inside(args)


if __name__ == "__main__":
    main()
