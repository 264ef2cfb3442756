"""What ``concilium serve`` adds over ``Team.arun``, at concurrency 1, 16 and 64.

The same ``single`` team on a scripted model with a fixed latency runs two ways,
side by side in one process tree:

- ``Team.arun`` in this process (durable and recorded, like the server's runs);
- ``POST /v1/chat/completions`` to a real ``concilium serve`` process on 127.0.0.1.

For each concurrency it prints requests/s and the p50/p99 latency of both, and the
added latency (serve minus arun, p50 and p99). Target: the service adds a few
milliseconds at concurrency 1 and stays within the model's latency at 64.

Usage: ``python bench/serve.py [--requests 128] [--latency 0.05]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASK = "What is 2 + 2?"
TEAM = {"name": "bench-single", "strategy": "single", "model": "scripted/benchserve",
        "roles": {"generator": {}}}


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _burst(call, requests: int, concurrency: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            began = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return time.perf_counter() - began, latencies


async def _measure(url: str, team_file: Path, requests: int,
                   levels: list[int]) -> list[dict[str, float]]:
    import httpx

    from concilium import load_team

    team = load_team(team_file)
    client = httpx.AsyncClient(base_url=url, timeout=600,
                               limits=httpx.Limits(max_connections=max(levels) + 8))

    async def arun(i: int) -> None:
        result = await team.arun(TASK, seed=i)
        assert result.answer == "4", result

    async def served(i: int) -> None:
        reply = await client.post("/v1/chat/completions", json={
            "model": "bench-single", "seed": i, "messages": [{"role": "user", "content": TASK}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] \
            == "4", reply.text

    for fn in (arun, served):  # warm-up: imports, first compile, connections
        await _burst(fn, 8, 4)
    rows = []
    for level in levels:
        wall_a, lat_a = await _burst(arun, requests, level)
        wall_s, lat_s = await _burst(served, requests, level)
        rows.append({"concurrency": level, "arun_rps": requests / wall_a,
                     "serve_rps": requests / wall_s,
                     "arun_p50": _pct(lat_a, 0.5), "arun_p99": _pct(lat_a, 0.99),
                     "serve_p50": _pct(lat_s, 0.5), "serve_p99": _pct(lat_s, 0.99)})
    await client.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.05, help="model latency (s)")
    parser.add_argument("--levels", default="1,16,64")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "scripts").mkdir()
        (root / "scripts" / "benchserve.yaml").write_text(json.dumps(
            {"latency_s": args.latency, "default": "Answer: 4"}))
        (root / "teams").mkdir()
        team_file = root / "teams" / "single.yaml"
        team_file.write_text(json.dumps(TEAM))
        # The server and this process each get their own ledger (same engine, SQLite).
        env = {**os.environ, "CONCILIUM_SCRIPTS_DIR": str(root / "scripts"),
               "PYTHONPATH": str(ROOT), "CONCILIUM_HOME": str(root / "serve-home")}
        env.pop("CONCILIUM_API_KEY", None)
        os.environ.update({"CONCILIUM_SCRIPTS_DIR": str(root / "scripts"),
                           "CONCILIUM_HOME": str(root / "arun-home")})
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        code = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
        server = subprocess.Popen([sys.executable, "-c", code, "serve", "--teams",
                                   str(root / "teams"), "--port", str(port)], env=env,
                                  stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            rows = asyncio.run(_measure(url, team_file, args.requests, levels))
        finally:
            server.terminate()
            server.wait(15)
    print(f"single team, scripted model {args.latency * 1000:.0f} ms, {args.requests} "
          f"requests per level, {os.cpu_count()} cores")
    print(f"{'conc':>4} {'arun req/s':>10} {'serve req/s':>11} {'arun p50':>9} "
          f"{'serve p50':>9} {'added p50':>9} {'arun p99':>9} {'serve p99':>9} {'added p99':>9}")
    for r in rows:
        print(f"{r['concurrency']:>4} {r['arun_rps']:>10.1f} {r['serve_rps']:>11.1f} "
              f"{r['arun_p50']:>7.1f}ms {r['serve_p50']:>7.1f}ms "
              f"{r['serve_p50'] - r['arun_p50']:>7.1f}ms {r['arun_p99']:>7.1f}ms "
              f"{r['serve_p99']:>7.1f}ms {r['serve_p99'] - r['arun_p99']:>7.1f}ms")
    added = statistics.median(r["serve_p50"] - r["arun_p50"] for r in rows)
    print("added = serve minus arun (HTTP, JSON, the server's own bookkeeping); "
          f"median over levels of the added p50: {added:.1f} ms")


if __name__ == "__main__":
    main()
