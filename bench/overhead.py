"""What concilium adds per call, beside a hand-written LangGraph graph calling litellm.

Everything calls the same real OpenAI-compatible HTTP server on 127.0.0.1, answering
at once (:mod:`concilium.scale.fake_server`, a subprocess), so only client-side cost
is timed. Measured side by side in one process, interleaved, after a warm-up:

- ``raw HTTP POST``: one ``httpx`` request (the floor);
- ``litellm.acompletion``: the call itself;
- ``hand-written graph``: a one-node LangGraph ``StateGraph`` whose node calls
  ``litellm.acompletion`` (what one would write without concilium; the yardstick);
- ``single, memory off``: ``team.arun(memory=False)``;
- ``single, as installed``: ``team.arun()`` with the defaults: the ledger and durable
  checkpoints on (SQLite under a temporary ``CONCILIUM_HOME``);
- the same two with every call forced through litellm (``CONCILIUM_DIRECT=0``), to
  show what the bookkeeping costs apart from skipping litellm.

Then the peak RSS of a fresh process making one call: the hand-written graph against
``concilium`` ``single`` as installed.

Targets (issue #17): ``single`` as installed <= 1.15x the hand-written graph; memory off
<= 1.05x; RSS of a one-call run <= 1.2x the hand-written graph's.

Usage: ``python bench/overhead.py [--runs 200] [--rss-rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TASK = "What is 2 + 2?"
MESSAGES = [{"role": "user", "content": TASK}]
MODEL = "openai/instant"
TARGET_DURABLE, TARGET_PLAIN, TARGET_RSS = 1.15, 1.05, 1.2
SETTLE_S = 0.01


@contextlib.contextmanager
def model_server() -> Iterator[str]:
    """The OpenAI-compatible server, answering at once; yields its ``/v1`` URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "concilium.scale.fake_server", "--port", "0", "--delay", "0"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def hand_written_graph(url: str) -> Any:
    """One node calling ``litellm.acompletion``: the graph a user would write by hand."""
    from typing import TypedDict

    import litellm
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        task: str
        answer: str

    async def generate(state: State) -> State:
        response = await litellm.acompletion(
            model=MODEL, api_base=url, api_key="no-key", temperature=0.0, max_tokens=192,
            messages=[{"role": "user", "content": state["task"]}])
        return {"answer": response.choices[0].message.content}

    graph = StateGraph(State)
    graph.add_node("generate", generate)
    graph.add_edge(START, "generate")
    graph.add_edge("generate", END)
    return graph.compile()


def team(url: str) -> Any:
    import yaml

    from concilium import load_team

    spec = yaml.safe_load((ROOT / "examples" / "teams" / "single.yaml").read_text())
    return load_team({**spec, "model": MODEL, "api_base": url})


async def _measure(url: str, runs: int) -> dict[str, list[float]]:
    import httpx
    import litellm

    single = team(url)
    graph = hand_written_graph(url)
    client = httpx.AsyncClient()

    async def raw() -> None:
        response = await client.post(f"{url}/chat/completions", json={
            "model": "instant", "messages": MESSAGES, "max_tokens": 192})
        response.json()

    async def direct() -> None:
        await litellm.acompletion(model=MODEL, api_base=url, api_key="no-key",
                                  messages=MESSAGES, max_tokens=192)

    async def by_hand() -> None:
        await graph.ainvoke({"task": TASK})

    async def plain() -> None:
        await single.arun(TASK, memory=False)

    async def durable() -> None:
        result = await single.arun(TASK)
        assert result.status == "ok", result.error

    def via_litellm(run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def forced() -> None:
            os.environ["CONCILIUM_DIRECT"] = "0"
            try:
                await run()
            finally:
                os.environ.pop("CONCILIUM_DIRECT", None)

        return forced

    cases = {"raw HTTP POST": raw, "litellm.acompletion": direct,
             "hand-written graph": by_hand, "single, memory off": plain,
             "single, as installed": durable,
             "single, memory off, litellm": via_litellm(plain),
             "single, as installed, litellm": via_litellm(durable)}
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm-up: first calls, compiles, the database
        for _ in range(10):
            await fn()
    for _ in range(runs):  # interleaved so drift and load hit every case alike
        for name, fn in cases.items():
            start = time.perf_counter()
            await fn()
            timings[name].append(time.perf_counter() - start)
            # Untimed: what a case left running (litellm logs each call from background
            # tasks and threads) finishes here, not inside the next case's time.
            await asyncio.sleep(SETTLE_S)
    await client.aclose()
    from concilium.memory.ledger import flush

    flush(30.0)
    return timings


def _child(kind: str, url: str) -> None:
    """One call in this fresh process, then its peak RSS in MB on stdout."""
    if kind == "graph":
        asyncio.run(hand_written_graph(url).ainvoke({"task": TASK}))
    else:
        asyncio.run(team(url).arun(TASK))
        from concilium.memory.ledger import flush

        flush(30.0)
    print(_peak_rss_mb())


def _peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``: ``ru_maxrss`` would include the forking
    parent's, which Linux carries across ``execve``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss(url: str, rounds: int, home: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"hand-written graph": [], "single, as installed": []}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONCILIUM_HOME": home,
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for _ in range(rounds):
        for name, kind in (("hand-written graph", "graph"), ("single, as installed", "team")):
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--url", url],
                                 env=env, check=True, capture_output=True, text=True)
            found[name].append(float(out.stdout.split()[-1]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rss-rounds", type=int, default=3)
    parser.add_argument("--child", choices=["graph", "team"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url)
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with tempfile.TemporaryDirectory() as home, model_server() as url:
        os.environ["CONCILIUM_HOME"] = home
        os.environ.pop("CONCILIUM_DATABASE_URL", None)
        timings = asyncio.run(_measure(url, args.runs))
        rss = _rss(url, args.rss_rounds, home) if args.rss_rounds else {}
    graph = statistics.median(timings["hand-written graph"]) * 1000
    print(f"per call, {args.runs} interleaved runs each, server answering at once "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'case':<32}{'median ms':>10}{'mean ms':>9}{'x graph':>9}")
    for name, samples in timings.items():
        median = statistics.median(samples) * 1000
        mean = statistics.mean(samples) * 1000
        print(f"{name:<32}{median:>10.2f}{mean:>9.2f}{median / graph:>9.2f}")
    for name, target in (("single, as installed", TARGET_DURABLE),
                         ("single, memory off", TARGET_PLAIN)):
        ratio = statistics.median(timings[name]) * 1000 / graph
        print(f"{name}: {ratio:.2f}x the hand-written graph "
              f"({'meets' if ratio <= target else 'MISSES'} <= {target}x)")
    if rss:
        by_hand = statistics.median(rss["hand-written graph"])
        ours = statistics.median(rss["single, as installed"])
        print(f"\npeak RSS of a one-call process (median of {args.rss_rounds}): hand-written "
              f"graph {by_hand:.0f} MB, single as installed {ours:.0f} MB: {ours / by_hand:.2f}x "
              f"({'meets' if ours / by_hand <= TARGET_RSS else 'MISSES'} <= {TARGET_RSS}x)")


if __name__ == "__main__":
    main()
