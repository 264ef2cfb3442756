"""Wall time of each strategy against its critical path, with a latency-simulating model.

Every model call of the scripted model sleeps ``--latency`` seconds, so a strategy
can be no faster than its *critical path*: the sum of latencies along its longest
chain of dependent calls. We measure that chain from the run itself: LangGraph
runs a graph in supersteps, the tasks of one superstep cannot see each other's
writes (they are independent), and the calls inside one task are sequential.
So the critical path is the sum over supersteps of the slowest task in each, and

    ratio = wall time / critical path

is 1.0 for a strategy that runs everything independent at the same time and
adds nothing; a strategy that awaited its parallel calls one by one would show
about N. ``sequential`` (the sum of all call latencies) is what running every
call one after another would cost.

Target: ratio <= 1.25 for every strategy at the default 100 ms latency. Each
strategy is also run durable (``durable=True``: a LangGraph SQLite checkpoint after
every step and every completed call journaled), interleaved with the plain runs, to
show what durability costs.

Usage: ``python bench/strategies.py [--latency 0.1] [--runs 3]``. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concilium.agents.context import Step

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "teams"
TASK = "What is 6 * 7?"
WRONG = "6 * 7 = 41.\nAnswer: 41"
RIGHT = "6 * 7 = 42.\nAnswer: 42"


def _cases() -> list[tuple[str, Any, Callable[[], Any]]]:
    """(label, team file or dict, script factory): each exercises its strategy's loop."""
    from concilium.agents.providers.scripted import Rule, Script

    def by_role(**replies: list[str]) -> Callable[[], Script]:
        return lambda: Script({k: list(v) for k, v in replies.items()}, default=RIGHT)

    def alternating() -> Script:
        count = iter(range(10_000))
        return Script(default=lambda call: f"Answer: {41 + next(count) % 2}",
                      rules=[Rule("Answer: 42", role="judge")])

    def learns() -> Script:
        return Script({"reflector": ["Reflection: 6 * 7 is 42."]}, rules=[
            Rule(lambda c: RIGHT if "is 42" in c.prompt else WRONG, role="generator")])

    debate = {"name": "debate-4x2-judge", "limits": {"max_llm_calls": 20},
              "strategy": {"name": "debate", "rounds": 2, "debaters": 4, "final": "judge"},
              "roles": {"debater": {"temperature": 0.7}, "judge": {}}}
    fixed = {"name": "sc-8", "strategy": {"name": "self_consistency", "samples": 8},
             "roles": {"generator": {"temperature": 0.7}}}
    return [
        ("single", EXAMPLES / "single.yaml", by_role()),
        ("gvr (2 refinements)", EXAMPLES / "gvr.yaml", by_role(generator=[WRONG],
                                                               refiner=[WRONG, RIGHT])),
        ("self_consistency (8 fixed)", fixed, by_role()),
        ("self_consistency (adaptive)", EXAMPLES / "self_consistency.yaml", by_role()),
        ("pal_self_consistency (5)", EXAMPLES / "pal_self_consistency.yaml",
         lambda: Script(default="Expression: 6 * 7")),
        ("self_refine (1 refinement)", EXAMPLES / "self_refine.yaml",
         by_role(generator=[WRONG], critic=["- 6 * 7 is not 41", "NO ISSUES"])),
        ("debate (4 x 2 + judge)", debate, alternating),
        ("debate_adversarial (3 rounds)", EXAMPLES / "debate_adversarial.yaml",
         by_role(moderator=["WINNER: none", "WINNER: none", "WINNER: negative"])),
        ("reflexion (2 trials)", EXAMPLES / "reflexion.yaml", learns),
        ("custom_graph (parallel entry)", EXAMPLES / "custom_graph.yaml",
         by_role(prose=[WRONG], pal=["Expression: 6 * 8"], retry=["Expression: 6 * 7"])),
    ]


def _critical_ms(records: list[tuple[int, str, float]]) -> float:
    """Sum over supersteps of the slowest task (a task's own calls are sequential)."""
    per_task: dict[tuple[int, str], float] = defaultdict(float)
    for superstep, task, latency in records:
        per_task[(superstep, task)] += latency
    slowest: dict[int, float] = defaultdict(float)
    for (superstep, _), total in per_task.items():
        slowest[superstep] = max(slowest[superstep], total)
    return sum(slowest.values())


async def _run_once(source: Any, make: Callable[[], Any]) -> tuple[float, float, float, int]:
    from langgraph.config import get_config

    from concilium import load_team
    from concilium.agents.providers import scripted

    records: list[tuple[int, str, float]] = []

    def on_step(step: Step) -> None:
        meta = get_config().get("metadata", {})
        records.append((int(meta.get("langgraph_step", 0)),
                        str(meta.get("langgraph_checkpoint_ns", "")),
                        float(step.get("latency_ms", 0.0))))

    team = load_team(source, model="scripted/bench")
    with scripted.use("bench", make()) as script:
        script.latency_s = LATENCY
        result = await team.arun(TASK, reference="42", on_step=on_step, durable=DURABLE)
    assert result.status == "ok", result.stop_reason
    sequential = sum(latency for _, _, latency in records)
    return result.wall_ms, _critical_ms(records), sequential, result.usage.llm_calls


LATENCY = 0.1
DURABLE = False


async def _measure(runs: int) -> list[tuple[str, int, float, float, float]]:
    from concilium.agents.llm import chat
    from concilium.agents.providers import scripted

    with scripted.use("bench", scripted.Script(default=RIGHT)):  # imports, first-call setup
        await chat([{"role": "user", "content": "warm up"}], model="scripted/bench")
    global DURABLE
    rows = []
    for label, source, make in _cases():
        samples, durable = [], []
        for _ in range(runs):  # interleaved, so drift hits both modes alike
            DURABLE = False
            samples.append(await _run_once(source, make))
            DURABLE = True
            durable.append(await _run_once(source, make))
        wall = statistics.median(s[0] for s in samples)
        critical = statistics.median(s[1] for s in samples)
        sequential = statistics.median(s[2] for s in samples)
        durable_wall = statistics.median(s[0] for s in durable)
        rows.append((label, samples[0][3], sequential, critical, wall, durable_wall))
    return rows


def main() -> None:
    global LATENCY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per model call")
    parser.add_argument("--runs", type=int, default=3, help="runs per strategy (median)")
    args = parser.parse_args()
    LATENCY = args.latency
    rows = asyncio.run(_measure(args.runs))
    print(f"scripted model latency {LATENCY * 1000:.0f} ms/call, median of {args.runs} runs\n")
    header = f"{'strategy':<32}{'calls':>6}{'sequential':>12}{'critical':>10}{'wall':>9}" \
             f"{'wall/critical':>15}{'durable wall':>14}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    for label, calls, sequential, critical, wall, durable in rows:
        print(f"{label:<32}{calls:>6}{sequential:>10.0f}ms{critical:>8.0f}ms{wall:>7.0f}ms"
              f"{wall / critical:>15.2f}{durable:>12.0f}ms{durable / critical:>7.2f}")
    worst = max(row[4] / row[3] for row in rows)
    worst_durable = max(row[5] / row[3] for row in rows)
    print(f"\nworst wall/critical ratio: {worst:.2f} (target <= 1.25); durable runs "
          f"(a checkpoint per step, the call journal): {worst_durable:.2f}")


if __name__ == "__main__":
    main()
