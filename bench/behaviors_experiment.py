"""Does behavior-conditioned inference help? The same team, the same items, behaviors off vs on.

1. Training: the team runs on a training split (disjoint from the test split) with
   ``remember: on_failure``, so the reflector writes a lesson after each wrong answer
   (checked against the reference); then ``distill`` condenses recurring lessons into
   behaviors (a name and a one-line procedure) with the same model.
2. Test: the team runs twice over the test split: behaviors off, then behaviors on
   (``memory.behaviors_k``, into the generator's, refiner's and debaters' prompts).
   Lessons are not recalled in either arm and nothing is remembered or quarantined
   while testing, so the only difference between the arms is the behaviors.
3. Report: accuracy with Wilson 95% intervals, tokens per item, and McNemar's test on
   the paired outcomes, whatever they show.

It runs unchanged against any model: ``--model ollama/llama3.1``, ``--model
openai/gpt-4o-mini`` … (default ``CONCILIUM_MODEL``, else ``local/smollm2``).

Usage:
    python bench/behaviors_experiment.py --train 12 --test 20
    python bench/behaviors_experiment.py --team examples/teams/self_refine.yaml --model X
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GSM8K = next(
    (
        base / "shared" / "datasets" / "gsm8k" / "test.jsonl"
        for base in (ROOT.parent, ROOT.parent.parent)  # beside a checkout or worktree
        if (base / "shared" / "datasets" / "gsm8k" / "test.jsonl").is_file()
    ),
    ROOT.parent / "shared" / "datasets" / "gsm8k" / "test.jsonl",
)
NAMESPACE = "behaviors-experiment"


def variant(spec: Any, model: str, timeout_s: float | None, **memory: Any) -> Any:
    """The team with its memory section replaced (and, if asked, a longer call timeout)."""
    from concilium import load_team

    data = spec.model_dump(mode="json", exclude_unset=True)
    data["memory"] = {"namespace": NAMESPACE, "recall_k": 0, "quarantine": False, **memory}
    if timeout_s is not None:  # a busy machine's local model: slow, not broken
        data["retry"] = {**data.get("retry", {}), "timeout_s": timeout_s}
        data["limits"] = {**data.get("limits", {}), "timeout_s": 4 * timeout_s}
    return load_team(data, model=model)


async def run_items(
    team: Any, items: list[Any], memory: Any, concurrency: int, label: str
) -> list[dict[str, Any]]:
    """Each item once; per item: correct, tokens, behaviors seen, seconds."""
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(item: Any) -> dict[str, Any]:
        nonlocal done
        async with gate:
            start = time.perf_counter()
            result = await team.arun(
                item.question, reference=item.reference, memory=memory, durable=False
            )
            done += 1
            print(
                f"  {label} {done}/{len(items)} correct={result.correct} "
                f"({time.perf_counter() - start:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            seen = {b for s in result.steps for b in s.get("behaviors") or []}
            return {
                "id": item.id,
                "correct": bool(result.correct),
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "behaviors": sorted(seen),
                "seconds": time.perf_counter() - start,
            }

    return list(await asyncio.gather(*(one(item) for item in items)))


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from concilium.eval.stats import wilson

    n = len(rows)
    right = sum(r["correct"] for r in rows)
    low, high = wilson(right, n) or (0.0, 1.0)
    return {
        "n": n,
        "right": right,
        "accuracy": right / n if n else 0.0,
        "ci": (low, high),
        "tokens": sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) / n,
        "completion": sum(r["completion_tokens"] for r in rows) / n,
        "with_behaviors": sum(1 for r in rows if r["behaviors"]),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from concilium import load_team
    from concilium.eval.datasets import load_dataset
    from concilium.eval.stats import mcnemar
    from concilium.memory.distill import distill
    from concilium.memory.ledger import flush
    from concilium.memory.store import Memory
    from concilium.settings import get_settings

    model = args.model or get_settings().model
    data = load_dataset(args.dataset, shuffle=True, seed=args.seed, limit=args.train + args.test)
    train, test = list(data.items[: args.train]), list(data.items[args.train :])
    assert not {i.key for i in train} & {i.key for i in test}, "the splits must be disjoint"
    home = Path(args.database_dir or tempfile.mkdtemp(prefix="concilium-behaviors-"))
    memory = Memory.open(f"sqlite:///{(home / 'experiment.db').as_posix()}", redis_url=False)
    spec = load_team(args.team, model=model).spec

    print(f"training on {len(train)} items ({model})", file=sys.stderr)
    learner = variant(spec, model, args.timeout_s, remember="on_failure")
    trained = await run_items(learner, train, memory, args.concurrency, "train")
    flush()
    made = await distill(
        memory,
        namespace=NAMESPACE,
        model=model,
        min_group=args.min_group,
        threshold=args.threshold,
        max_behaviors=args.max_behaviors,
    )
    if not made and args.min_group > 1:  # no recurring group on a small split: singletons
        made = await distill(
            memory,
            namespace=NAMESPACE,
            model=model,
            min_group=1,
            threshold=args.threshold,
            max_behaviors=args.max_behaviors,
        )
    print(f"{memory.count(NAMESPACE)} lessons -> {len(made)} behaviors", file=sys.stderr)

    off = variant(spec, model, args.timeout_s, behaviors_k=0)
    on = variant(
        spec,
        model,
        args.timeout_s,
        behaviors_k=args.behaviors_k,
        behaviors_for=["generator", "refiner", "debater"],
    )
    rows_off = await run_items(off, test, memory, args.concurrency, "off")
    rows_on = await run_items(on, test, memory, args.concurrency, "on")
    flush()
    a_only = sum(
        1 for a, b in zip(rows_off, rows_on, strict=True) if a["correct"] and not b["correct"]
    )
    b_only = sum(
        1 for a, b in zip(rows_off, rows_on, strict=True) if b["correct"] and not a["correct"]
    )
    test_ = mcnemar(a_only, b_only)
    memory.close()
    return {
        "model": model,
        "team": spec.name,
        "dataset": data.name,
        "seed": args.seed,
        "train": len(train),
        "train_right": sum(r["correct"] for r in trained),
        "behaviors": [{"id": b.id, "name": b.name, "procedure": b.procedure} for b in made],
        "off": summary(rows_off),
        "on": summary(rows_on),
        "mcnemar": {
            "off_only": a_only,
            "on_only": b_only,
            "p": test_.p_value,
            "method": test_.method,
        },
        "items": {"off": rows_off, "on": rows_on},
    }


def report(out: dict[str, Any]) -> str:
    lines = [
        f"behaviors off vs on: team {out['team']}, model {out['model']}, "
        f"{out['dataset']} (seed {out['seed']}); trained on {out['train']} items "
        f"({out['train_right']} right) -> {len(out['behaviors'])} behaviors",
        "",
        "| arm | n | right | accuracy | Wilson 95% CI | tokens/item | completion tokens/item "
        "| items with a behavior in a prompt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ("off", "on"):
        s = out[arm]
        lines.append(
            f"| behaviors {arm} | {s['n']} | {s['right']} | {s['accuracy']:.0%} | "
            f"{s['ci'][0]:.0%}–{s['ci'][1]:.0%} | {s['tokens']:.0f} | "
            f"{s['completion']:.0f} | {s['with_behaviors']} |"
        )
    m = out["mcnemar"]
    lines += [
        "",
        f"McNemar ({m['method']}): right only with behaviors off {m['off_only']}, "
        f"only with them on {m['on_only']}, p = {m['p']:.3g}",
    ]
    for b in out["behaviors"]:
        lines.append(f"- behavior #{b['id']} {b['name']}: {b['procedure']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="Any litellm model string (default CONCILIUM_MODEL).")
    parser.add_argument("--team", default=str(ROOT / "examples" / "teams" / "single.yaml"))
    parser.add_argument(
        "--dataset", default=str(GSM8K), help="A .jsonl of question/answer records, or arith:N."
    )
    parser.add_argument("--train", type=int, default=12, help="Training items.")
    parser.add_argument("--test", type=int, default=20, help="Test items (run twice).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--behaviors-k", type=int, default=3)
    parser.add_argument("--min-group", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.15)
    parser.add_argument("--max-behaviors", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, help="Per-call timeout (default: the team's).")
    parser.add_argument("--database-dir", help="Keep the experiment's SQLite here.")
    parser.add_argument("--json", type=Path, help="Also write the full results here.")
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    print(report(out))


if __name__ == "__main__":
    main()
