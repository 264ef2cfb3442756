"""What a person in the loop and a team inside a team cost concilium itself.

With an instant scripted model, so only our own code is timed (medians of ``--runs``):

- a durable gvr run whose verifier is a model vs. one whose verifier is a person
  answering through ``ask`` at once (the pause: an interrupt, a checkpoint read, the
  node run again with its calls from the journal);
- the same pause answered by ``resume_run(answer=...)`` (what a new process or the
  service pays: open the checkpointer, claim the run, rebuild the team, read state);
- a ``single`` team run directly vs. as the only node of a custom graph (``team:``).

Usage: ``python bench/people.py [--runs 30]``. Prints a table and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TASK = "What is 17 * 24 + 3?"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"


def team(verifier: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "b",
        "strategy": "gvr",
        "model": "scripted/bench",
        "roles": {"generator": {}, "verifier": verifier, "refiner": {}},
    }


async def timed(runs: int, make: Any) -> float:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        await make(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def main(runs: int) -> None:
    from concilium import load_team, resume_run
    from concilium.agents.providers import scripted

    scripted.register(
        "bench",
        scripted.Script(rules=[scripted.Rule("VERDICT: correct", role="verifier")], default=RIGHT),
    )
    model = load_team(team({}))
    person = load_team(team({"role": "human"}))

    async def by_model(i: int) -> None:
        assert (await model.arun(TASK, run_id=f"m{i}")).status == "ok"

    async def by_ask(i: int) -> None:
        result = await person.arun(TASK, run_id=f"a{i}", ask=lambda q: "yes")
        assert result.status == "ok"

    async def by_resume(i: int) -> None:
        assert (await person.arun(TASK, run_id=f"r{i}")).status == "paused"
        assert (await resume_run(f"r{i}", answer="yes")).status == "ok"

    single = {
        "name": "s",
        "strategy": "single",
        "model": "scripted/bench",
        "roles": {"generator": {}},
    }
    directory = Path(tempfile.mkdtemp())
    (directory / "single.json").write_text(__import__("json").dumps(single))
    (directory / "outer.json").write_text(
        __import__("json").dumps(
            {
                "name": "o",
                "strategy": {"name": "graph", "finish": ["inner"]},
                "model": "scripted/bench",
                "roles": {"inner": {"team": "single.json"}},
            }
        )
    )
    direct, nested = load_team(directory / "single.json"), load_team(directory / "outer.json")

    async def run(t: Any) -> None:
        assert (await t.arun(TASK, durable=False)).answer == "411"

    rows = [
        ("gvr, verifier a model (durable)", await timed(runs, by_model)),
        ("gvr, verifier a person via ask", await timed(runs, by_ask)),
        ("gvr, paused, then resume_run(answer)", await timed(runs, by_resume)),
        ("single team, direct", await timed(runs, lambda i: run(direct))),
        ("single team as a custom-graph node", await timed(runs, lambda i: run(nested))),
    ]
    for name, ms in rows:
        print(f"{name:<40} {ms:8.1f} ms")
    print(f"person via ask / model verifier: {rows[1][1] / rows[0][1]:.2f}x")
    print(f"pause + resume_run / model verifier: {rows[2][1] / rows[0][1]:.2f}x")
    print(f"team as a node / direct: {rows[4][1] / rows[3][1]:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("CONCILIUM_HOME", tempfile.mkdtemp())
    os.environ["CONCILIUM_REDIS_URL"] = ""
    sys.path.insert(0, str(ROOT))
    asyncio.run(main(args.runs))
