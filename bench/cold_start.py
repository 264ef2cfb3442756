"""How long ``concilium run`` takes from a cold process, beside ``import litellm``.

Each round starts, in turn, fresh processes of:

- ``python -c pass`` (the interpreter's own start, the floor);
- ``python -c "import litellm"`` (what a run paid before the model door learned to
  skip litellm; 4.2-4.6 s on an idle machine here);
- ``concilium --help`` (target: <= 0.3 s idle);
- ``concilium run examples/teams/single.yaml "What is 2+3?" --model scripted/instant``
  (a scripted model answering at once: only our own start-up is timed);
- the same run on ``openai/instant`` served by a local OpenAI-compatible HTTP server
  (:mod:`concilium.scale.fake_server`, answering at once);
- optionally the same two runs with another checkout (``--baseline /work/main``), so
  the before/after ratio is measured in one run on the same (busy) machine.

Rounds are interleaved so load on a shared machine hits every case alike; medians are
printed, with each case's ratio to ``import litellm``. The target (issue #17) is a run
in <= 2.0 s on an idle machine, where ``import litellm`` takes ~4.4 s: a ratio of
<= 0.45 to it.

Usage: ``python bench/cold_start.py [--rounds 5] [--baseline /work/main]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 2.0
LITELLM_IDLE_S = 4.4
"""``import litellm`` (1.110) on this machine when idle: the yardstick of the target."""


@contextlib.contextmanager
def _model_server() -> Iterator[str]:
    """A local OpenAI-compatible server answering at once; yields its ``/v1`` URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "concilium.scale.fake_server", "--port", "0", "--delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout of concilium to time the same runs with",
    )
    args = parser.parse_args()
    team = str(ROOT / "examples" / "teams" / "single.yaml")
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp, _model_server() as url:
        work = Path(tmp)
        (work / "scripts").mkdir()
        (work / "scripts" / "instant.yaml").write_text('default: "2 + 3 = 5.\\nAnswer: 5"\n')
        base = {
            **os.environ,
            "CONCILIUM_SCRIPTS_DIR": str(work / "scripts"),
            "CONCILIUM_HOME": str(work / ".concilium"),
            "OPENAI_API_BASE": url,
            "OPENAI_API_KEY": "no-key",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        base.pop("CONCILIUM_DATABASE_URL", None)
        trees = {"": ROOT, **({" (baseline)": args.baseline} if args.baseline else {})}
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([py, "-c", "pass"], base),
            "import litellm": ([py, "-c", "import litellm"], base),
            "concilium --help": (
                [py, "-m", "concilium.cli.app", "--help"],
                {**base, "PYTHONPATH": str(ROOT)},
            ),
        }
        for label, tree in trees.items():
            # Each tree its own database: another checkout may be at another schema.
            env = {**base, "PYTHONPATH": str(tree),
                   "CONCILIUM_HOME": str(work / f".concilium{label.strip()}")}
            run = [py, "-m", "concilium.cli.app", "run", team, "What is 2+3?", "-q", "--model"]
            cases[f"run, scripted{label}"] = ([*run, "scripted/instant"], env)
            cases[f"run, HTTP server{label}"] = ([*run, "openai/instant"], env)
        for argv, env in cases.values():  # warm-up: the database exists, files are cached
            _timed(argv, env, work)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (argv, env) in cases.items():
                times[name].append(_timed(argv, env, work))
    litellm = statistics.median(times["import litellm"])
    print(
        f"cold start, {args.rounds} interleaved rounds (median s; load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"{'case':<30}{'median s':>10}{'min s':>8}{'/ import litellm':>18}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<30}{median:>10.2f}{min(samples):>8.2f}{median / litellm:>18.2f}")
    ours = statistics.median(times["run, scripted"])
    ratio = ours / litellm
    verdict = "meets" if ratio * LITELLM_IDLE_S <= TARGET_S else "MISSES"
    print(
        f"\nrun (scripted) = {ratio:.2f} x import litellm: ~{ratio * LITELLM_IDLE_S:.1f} s on an "
        f"idle machine where litellm imports in {LITELLM_IDLE_S} s ({verdict} the "
        f"{TARGET_S} s target)"
    )
    if args.baseline:
        before = statistics.median(times["run, scripted (baseline)"])
        print(
            f"baseline {args.baseline}: {before:.2f} s; this checkout takes "
            f"{ours / before:.2f} x as long"
        )


if __name__ == "__main__":
    main()
