"""Reflection memory and run ledger: recall latency at 100k lessons, ledger write overhead.

Targets (issue 4, issue 13):

- recall p99 at 100,000 stored reflections: Redis hot set < 1 ms, SQLite < 5 ms,
  PostgreSQL < 10 ms;
- ledger overhead under 2% of a run with an instant (scripted) model.

The Redis figure is recall answered from the namespace's hot set (memory/hot.py):
each query asked once to fill it (a miss: SQL plus one write to Redis, also
reported), then timed on the second ask, as another process or a later run of the
same item would. A task recalled for the first time since the namespace's last write
costs the SQL figure plus the miss overhead.

Recall is measured end to end through ``Memory.recall`` (full-text candidates, ORM
load, re-ranking) on SQLite and, when it answers, PostgreSQL. The store holds
100,000 lessons whose tasks are GSM8K questions with their numbers changed (read
from ``../shared/datasets/gsm8k``; a synthetic generator stands in without it),
all in the queried namespace (the worst case) plus, separately, spread over ten
namespaces; the queries are held-out GSM8K questions the store has never seen.

The ledger is measured by running the same ``gvr`` team with an instant model,
interleaved: without memory, with the ledger only, and with the ledger plus recall.

Usage: ``python bench/memory.py [--n 100000] [--queries 500] [--runs 300] [--no-postgres]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GSM8K = next((base / "shared" / "datasets" / "gsm8k" / "test.jsonl"
              for base in (ROOT.parent, ROOT.parent.parent)  # beside a checkout or worktree
              if (base / "shared" / "datasets" / "gsm8k" / "test.jsonl").is_file()),
             ROOT.parent / "shared" / "datasets" / "gsm8k" / "test.jsonl")
REDIS_URL = os.environ.get("CONCILIUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("CONCILIUM_BENCH_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADVICE = [
    "multiply the unit price by the count before adding extras",
    "convert every quantity to the same unit first",
    "write each intermediate total as its own line and check it",
    "re-read which quantity the question asks for at the end",
    "percentages apply to the original amount, not the running total",
    "count days carefully, including the first and the last",
    "subtract what was given away before splitting the rest",
    "halves and doubles are easy to swap: say which one applies",
    "add the fixed fee once, not per item",
    "per-hour rates times hours give the pay; add overtime separately",
]


def questions() -> list[str]:
    if GSM8K.is_file():
        with GSM8K.open(encoding="utf-8") as handle:
            return [json.loads(line)["question"] for line in handle if line.strip()]
    rng = random.Random(7)  # a stand-in with a similar vocabulary
    things = ["apples", "pencils", "tickets", "cookies", "books", "shirts", "eggs", "coins"]
    people = ["Ann", "Ben", "Carla", "Dev", "Eli", "Fatima", "Gus", "Hana"]
    return [f"{rng.choice(people)} buys {rng.randint(2, 90)} {rng.choice(things)} for "
            f"${rng.randint(1, 20)} each and sells {rng.randint(1, 50)} of them at the market "
            f"on day {i}. How much money does {rng.choice(people)} make?" for i in range(1500)]


def corpus(pool: list[str], n: int, namespaces: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def renumber(match: re.Match[str]) -> str:
        return str(max(1, int(int(match.group(0)) * rng.uniform(0.5, 2.0))))

    rows = []
    for i in range(n):
        task = re.sub(r"\d+", renumber, rng.choice(pool))
        words = [w for w in re.findall(r"[A-Za-z]{5,}", task)][:3]
        lesson = f"For {' '.join(words).lower()}: {rng.choice(ADVICE)}."
        checked = rng.random() < 0.8
        rows.append({
            "uid": uuid.UUID(int=rng.getrandbits(128)).hex, "namespace": f"ns{i % namespaces}",
            "task": task, "lesson": lesson, "outcome": rng.choice(["failure", "success"]),
            "verified_by": rng.choice(["ground_truth", "tool"]) if checked else "llm",
            "team": "bench", "model": "scripted/bench",
        })
    return rows


def fill(memory: Any, rows: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for i in range(0, len(rows), 5000):
        memory.remember_many(rows[i:i + 5000])
    return time.perf_counter() - start


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "mean":
            statistics.mean(samples) * 1000}


def bench_recall(url: str, label: str, rows: list[dict[str, Any]], queries: list[str],
                 namespaces: int) -> dict[str, Any]:
    from concilium.memory.store import Memory

    memory = Memory.open(url, redis_url=False)
    load_s = fill(memory, rows)
    if memory.db.dialect == "postgresql":
        from sqlalchemy import text

        with memory.db.engine.connect() as conn:
            conn.execute(text("ANALYZE reflections"))
            conn.commit()
    found = 0
    for query in queries[:50]:  # warm-up: caches, prepared plans
        memory.recall(query, namespace="ns0", k=3)
    samples, cpu = [], []
    for query in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        lessons = memory.recall(query, namespace="ns0", k=3)
        samples.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
        found += bool(lessons)
    memory.close()
    return {"store": label, "namespaces": namespaces, "rows": len(rows), "load_s": load_s,
            "hit_rate": found / len(queries), **percentiles(samples),
            "cpu_p99": percentiles(cpu)["p99"], "load": os.getloadavg()[0]}


def bench_redis(url: str, queries: list[str], namespaces: int) -> list[dict[str, Any]]:
    """Recall through the Redis hot set over an already filled database at ``url``."""
    import redis

    from concilium.memory.store import Memory

    prefix = f"concilium-bench-{uuid.uuid4().hex[:8]}:"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as error:
        return [{"store": "redis", "skipped": f"no Redis at {REDIS_URL}: {error}"}]
    memory = Memory.open(url, redis_url=REDIS_URL, redis_prefix=prefix)
    try:
        misses, hits, cpu, found = [], [], [], 0
        for query in queries:
            start = time.perf_counter()
            memory.recall(query, namespace="ns0", k=3)
            misses.append(time.perf_counter() - start)
        for query in queries:
            start, start_cpu = time.perf_counter(), time.thread_time()
            lessons = memory.recall(query, namespace="ns0", k=3)
            hits.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
            found += bool(lessons)
        assert memory.hot is not None and memory.hot.hits == len(queries)
    finally:
        if memory.redis is not None:
            memory.redis.delete_prefix()
        memory.close()
    return [{"store": "redis (hit)", "namespaces": namespaces, "rows": 0, "load_s": 0.0,
             "hit_rate": found / len(queries), **percentiles(hits),
             "cpu_p99": percentiles(cpu)["p99"], "load": os.getloadavg()[0]},
            {"store": "redis (miss)", "namespaces": namespaces, "rows": 0, "load_s": 0.0,
             "hit_rate": found / len(queries), **percentiles(misses),
             "load": os.getloadavg()[0]}]


async def bench_ledger(runs: int, home: Path) -> dict[str, Any]:
    from concilium import load_team
    from concilium.agents.providers import scripted
    from concilium.memory.store import Memory

    wrong = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
    right = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
    scripted.register("bench", scripted.Script(
        rules=[scripted.Rule(wrong, role="generator"), scripted.Rule(right, role="refiner")]))
    spec = {"name": "bench-gvr", "strategy": "gvr", "limits": {"max_rounds": 1},
            "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}}}
    plain = load_team({**spec, "memory": {"recall_k": 0}}, model="scripted/bench")
    recalling = load_team(spec, model="scripted/bench")
    memory = Memory.open(f"sqlite:///{(home / 'ledger.db').as_posix()}", redis_url=False)
    for i in range(200):  # something to recall from
        memory.remember(f"lesson {i}: check every product", task="What is 17 * 24 + 3?",
                        namespace="bench-gvr", outcome="failure", verified_by="tool")
    task = "What is 17 * 24 + 3?"
    cases = {
        "no memory": lambda: plain.arun(task, memory=False),
        "ledger": lambda: plain.arun(task, memory=memory),
        "ledger + recall": lambda: recalling.arun(task, memory=memory),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        for _ in range(20):
            await fn()
    steps = len((await plain.arun(task, memory=False)).steps)
    for _ in range(runs):
        for name, fn in cases.items():
            start = time.perf_counter()
            await fn()
            times[name].append(time.perf_counter() - start)
    memory.close()
    base = statistics.median(times["no memory"])
    out = {"steps_per_run": steps}
    for name, samples in times.items():
        med = statistics.median(samples)
        out[name] = {"median_ms": med * 1000, "overhead": (med - base) / base,
                     "per_step_us": (med - base) / steps * 1e6}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="Stored reflections.")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--runs", type=int, default=300, help="Team runs per ledger case.")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-ledger", action="store_true", help="Recall figures only.")
    parser.add_argument("--namespaces", type=int, nargs="+", default=[1, 10],
                        help="Namespace counts the lessons are spread over (one store each).")
    args = parser.parse_args()
    os.environ.setdefault("CONCILIUM_HOME", tempfile.mkdtemp(prefix="concilium-bench-"))

    pool = questions()
    held_out, known = pool[-args.queries:], pool[:-args.queries]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for namespaces in args.namespaces:
            rows = corpus(known, args.n, namespaces)
            url = f"sqlite:///{tmp}/recall-{namespaces}.db"
            results.append(bench_recall(url, "sqlite", rows, held_out, namespaces))
            results.extend(bench_redis(url, held_out, namespaces))
            if not args.no_postgres:
                results.append(_postgres(rows, held_out, namespaces))
        ledger = None if args.no_ledger else asyncio.run(bench_ledger(args.runs, Path(tmp)))

    print(f"recall (k=3) over {args.n:,} reflections, {args.queries} unseen GSM8K queries")
    print(f"{'store':<13} {'namespaces':>10} {'load s':>7} {'hit':>5} {'p50 ms':>7} "
          f"{'p90 ms':>7} {'p99 ms':>7} {'cpu p99':>8} {'loadavg':>8}")
    for r in results:
        if "skipped" in r:
            print(f"{r['store']:<10} skipped: {r['skipped']}")
            continue
        cpu_p99 = f"{r['cpu_p99']:>8.2f}" if "cpu_p99" in r else f"{'-':>8}"
        print(f"{r['store']:<13} {r['namespaces']:>10} {r['load_s']:>7.1f} "
              f"{r['hit_rate']:>5.0%} {r['p50']:>7.2f} {r['p90']:>7.2f} {r['p99']:>7.2f} "
              f"{cpu_p99} {r['load']:>8.1f}")
    print("(cpu p99: this process's own CPU time per recall, in ms; on a busy machine the "
          "wall-clock figures are mostly waiting for a core: see loadavg)")
    for store, target in (("redis (hit)", 1.0), ("sqlite", 5.0), ("postgres", 10.0)):
        p99s = [r["p99"] for r in results if r["store"] == store and "p99" in r]
        if p99s:
            print(f"target recall p99 < {target:g} ms on {store} at {args.n:,}: "
                  f"{max(p99s):.2f} ms -> {'MET' if max(p99s) < target else 'MISSED'}")
    print()
    if ledger is None:
        return
    print(f"ledger: gvr team, instant scripted model, {ledger['steps_per_run']} steps a run, "
          f"{args.runs} runs a case (medians)")
    for name in ("no memory", "ledger", "ledger + recall"):
        case = ledger[name]
        print(f"  {name:<16} {case['median_ms']:7.2f} ms  overhead {case['overhead']:+6.1%}  "
              f"({case['per_step_us']:+.0f} us a step)")
    overhead = ledger["ledger"]["overhead"]
    print(f"target ledger overhead < 2% of a run: {overhead:+.1%} -> "
          f"{'MET' if overhead < 0.02 else 'MISSED'}")


def _postgres(rows: list[dict[str, Any]], queries: list[str], namespaces: int) -> dict[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    schema = "concilium_bench_" + uuid.uuid4().hex[:8]
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as error:
        return {"store": "postgres", "skipped": str(error.orig).strip()}
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        return bench_recall(url, "postgres", rows, queries, namespaces)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
