"""``concilium batch TEAM --input tasks.jsonl --output answers.jsonl``: one team, many tasks.

Each output line is one task's record (id, status, answer, calls, tokens, cost,
run id). Rerunning the same command skips the ids already done; failed ones run
again. ``--ray auto`` (or ``--ray ray://host:10001``) spreads the tasks over
``--workers`` warm Ray actors; without it everything runs in this process.
Ctrl-C stops with every finished record on disk (exit code 130).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err

__all__ = ["batch_command"]


@cli_errors
def batch_command(
    team: Annotated[Path, typer.Argument(help="Team YAML file.", show_default=False)],
    input_path: Annotated[
        Path, typer.Option("--input", "-i", show_default=False,
                           help="JSONL of tasks: {\"id\", \"task\", \"reference\"?, \"tests\"?}.")
    ],
    output_path: Annotated[
        Path, typer.Option("--output", "-o", show_default=False,
                           help="JSONL of results (appended; rerun resumes).")
    ],
    ray: Annotated[
        str | None, typer.Option(help="Run on Ray: 'auto' (RAY_ADDRESS or a local cluster) "
                                      "or an address such as ray://host:10001.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray actors (with --ray).")] = 2,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Tasks in flight (per worker with --ray).")
    ] = 4,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Run every role on this litellm model.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Base sampling seed.")] = 0,
    timeout: Annotated[float | None, typer.Option(help="Seconds one task may take.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run TEAM on every task of --input and write one result per task to --output."""
    import asyncio

    from concilium.scale.batch import Batch, BatchOptions
    from concilium.scale.driver import drive_batch
    from concilium.team import load_team

    loaded = load_team(team, model=model)
    batch = Batch(loaded, input_path, output_path,
                  BatchOptions(concurrency=concurrency, seed=seed, item_timeout_s=timeout))
    skipped = len(batch.tasks) - len(batch.pending)
    if not quiet:
        err.print(f"{loaded.name}: {len(batch.pending)} task(s) to run, {skipped} already done")
    bar = _Bar(batch, enabled=not quiet)
    interrupted = False
    with bar:
        try:
            asyncio.run(drive_batch(batch, ray=ray, workers=workers, on_record=bar.update,
                                    on_pool=bar.attach))
        except KeyboardInterrupt:
            interrupted = True
    failed = [r for r in bar.records if r.get("status") not in ("ok", "stopped")]
    if not quiet:
        err.print(f"wrote {output_path}: {len(batch.done)}/{len(batch.tasks)} done"
                  + (f", {len(failed)} failed (rerun to retry them)" if failed else ""))
    if interrupted:
        err.print("interrupted; rerun the same command to finish")
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(1)


class _Bar:
    """One rich bar: tasks done, accuracy so far, calls, tokens, cost, per-worker rate."""

    def __init__(self, batch: Any, *, enabled: bool) -> None:
        self.batch = batch
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []
        self.pool: Any = None
        self.progress: Any = None
        self.task_id: Any = None
        self.calls = self.tokens = self.scored = self.correct = 0
        self.cost = 0.0

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                     console=err)
            self.task_id = self.progress.add_task(self.batch.team.name,
                                                  total=len(self.batch.tasks),
                                                  completed=len(self.batch.done),
                                                  info=self.info())
            self.progress.start()
        return self

    def attach(self, pool: Any) -> None:
        self.pool = pool

    def info(self) -> str:
        acc = f"{100 * self.correct / self.scored:.1f}%" if self.scored else "—"
        text = (f"acc {acc} · {self.calls} calls · {self.tokens:,} tok · ${self.cost:.4f}")
        if self.pool is not None:
            rates = " ".join(f"{s.rate:.1f}" for s in self.pool.stats)
            text += f" · items/s per worker: {rates}"
        return text

    def update(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.calls += int(record.get("llm_calls", 0))
        self.tokens += int(record.get("total_tokens", 0))
        self.cost += float(record.get("cost", 0.0))
        if record.get("correct") is not None:
            self.scored += 1
            self.correct += bool(record["correct"])
        if self.progress is not None:
            self.progress.update(self.task_id, completed=len(self.batch.done), info=self.info())

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
