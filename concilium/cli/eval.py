"""``concilium eval TEAM... --dataset D``: compare teams side by side on a dataset.

Shows a progress bar per team, then a table (accuracy with its 95 % interval,
calls, tokens, cost, latency, flips) and paired comparisons; writes
``items.jsonl``, ``summary.json`` and a report with plots to ``--out``.
Rerunning the same command resumes: finished items are not run again.
Ctrl-C stops it with valid partial results on disk (exit code 130).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err, out

__all__ = ["eval_command", "register"]


class Memory(StrEnum):
    """How an evaluation uses the reflection memory."""

    off = "off"
    read = "read"
    learn = "learn"


class Format(StrEnum):
    """Answer formats a grader understands."""

    number = "number"
    choice = "choice"
    text = "text"
    code = "code"


class ReportKind(StrEnum):
    """The report's page format."""

    md = "md"
    html = "html"


@cli_errors
def eval_command(
    teams: Annotated[
        list[Path],
        typer.Argument(help="Team YAML files to compare.", metavar="TEAM", show_default=False),
    ],
    dataset: Annotated[
        str,
        typer.Option("--dataset", "-d", show_default=False,
                     help="JSONL or JSON-list file, or arith:N[:SEED] for generated problems."),
    ],
    limit: Annotated[int | None, typer.Option(help="Evaluate at most N items.")] = None,
    offset: Annotated[int, typer.Option(help="Skip the first N items.")] = 0,
    shuffle: Annotated[bool, typer.Option(help="Shuffle items (with --seed) first.")] = False,
    seed: Annotated[int, typer.Option(help="Shuffle seed and base sampling seed.")] = 0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Team runs in flight, across all teams.")
    ] = 4,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds one team may spend on one item.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory [default: reports/<dataset>].",
                     show_default=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Run every role on this litellm model.")
    ] = None,
    memory: Annotated[
        Memory, typer.Option(help="Reflection memory: off, read lessons, or learn as it goes.")
    ] = Memory.off,
    answer_format: Annotated[
        Format | None,
        typer.Option("--format", help="Grade as this format [default: each team's answer.format]."),
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Relative tolerance for numbers [default: the team's].")
    ] = None,
    question_field: Annotated[str, typer.Option(help="Dataset field with the question.")] = (
        "question"
    ),
    answer_field: Annotated[str, typer.Option(help="Dataset field with the answer(s).")] = (
        "answer"
    ),
    report: Annotated[ReportKind, typer.Option(help="Report page format.")] = ReportKind.md,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print summary.json to stdout instead of tables.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    ray: Annotated[str | None, typer.Option(help="Run on Ray: 'auto' or ray://host:10001.")] = None,
    workers: Annotated[int, typer.Option(help="Ray actors (with --ray).")] = 2,
) -> None:
    """Evaluate each TEAM on a dataset: accuracy (95% CI), calls, tokens, cost, latency, flips."""
    import asyncio

    from concilium.eval.datasets import load_dataset
    from concilium.eval.report import write_report
    from concilium.eval.runner import EvalOptions, Evaluation
    from concilium.team import load_team

    loaded = [load_team(path, model=model) for path in teams]
    data = load_dataset(dataset, question_field=question_field, answer_field=answer_field,
                        limit=limit, offset=offset, shuffle=shuffle, seed=seed)
    if not data.items:
        from concilium.errors import ConfigError

        raise ConfigError(f"no items selected from {dataset} ({data.total} items, "
                          f"--offset {offset}, --limit {limit})")
    options = EvalOptions(concurrency=concurrency, item_timeout_s=timeout, memory=memory.value,
                          seed=seed, answer_format=answer_format.value if answer_format else None,
                          tolerance=tolerance)
    target = out_dir if out_dir is not None else Path("reports") / data.name
    evaluation = Evaluation(loaded, data, target, options)

    interrupted = False
    with _Bars(evaluation, enabled=not quiet and not json_out) as on_record:
        try:
            if ray is None:
                asyncio.run(evaluation.run(on_record))
            else:
                from concilium.scale.driver import drive_eval

                asyncio.run(drive_eval(evaluation, loaded, ray=ray, workers=workers,
                                       on_record=on_record))
        except KeyboardInterrupt:
            interrupted = True
    summary = evaluation.write_summary(complete=False if interrupted else None)
    written = write_report(summary, evaluation.records(), target, report.value)
    if json_out:
        import json

        out.print_json(json.dumps(summary))
    else:
        _print_tables(summary)
    if not quiet and not json_out:
        files = ", ".join(p.name for p in [evaluation.results_path, evaluation.summary_path,
                                           written.path, *written.images])
        err.print(f"wrote {target}/: {files}")
        for note in written.notes:
            err.print(f"note: {note}")
    if interrupted:
        raise KeyboardInterrupt
    failed = sum(n for t in summary["teams"] for k, n in t["status"].items()
                 if k in ("failed", "error"))
    if failed:
        err.print(f"[red]{failed} item run(s) failed[/red] (their `error` is in "
                  f"{evaluation.results_path}); rerun the same command to retry just those",
                  markup=True)
        raise typer.Exit(code=1)


class _Bars:
    """One rich progress bar per team on stderr; yields the runner's ``on_record`` callback."""

    def __init__(self, evaluation: Any, *, enabled: bool) -> None:
        self.evaluation = evaluation
        self.enabled = enabled
        self.bars: Any = None
        self.ids: list[Any] = []

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.evaluation.load()
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]}"),
            TextColumn("{task.fields[tokens]} tok"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
        )
        width = max(len(slot.team.name) for slot in self.evaluation.slots)
        for slot in self.evaluation.slots:
            tally = slot.tally
            self.ids.append(self.bars.add_task(
                slot.team.name.ljust(width), total=tally.total, completed=tally.done,
                acc=_acc(tally), tokens=f"{tally.tokens:,}",
            ))
        self.bars.start()
        return self.update

    def update(self, index: int, record: dict[str, Any]) -> None:
        tally = self.evaluation.slots[index].tally
        self.bars.update(self.ids[index], completed=tally.done, acc=_acc(tally),
                         tokens=f"{tally.tokens:,}")

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()


def _acc(tally: Any) -> str:
    accuracy = tally.accuracy
    return "  —  " if accuracy is None else f"{100 * accuracy:5.1f}%"


def _print_tables(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from concilium.eval.report import (
        COMPARISON_HEADERS,
        TEAM_HEADERS,
        comparison_rows,
        team_rows,
    )

    title = f"{summary['dataset']['name']}: {summary['dataset']['items']} items"
    if not summary["complete"]:
        title += " (partial)"
    # piped output has no terminal to wrap at: print the tables whole
    console = out if out.is_terminal else Console(file=out.file, width=160, highlight=False)
    table = Table(*TEAM_HEADERS, title=title)
    for row in team_rows(summary):
        table.add_row(*row)
    console.print(table)
    rows = comparison_rows(summary)
    if rows:
        pairs = Table(*COMPARISON_HEADERS, title="paired comparisons (McNemar)")
        for row in rows:
            pairs.add_row(*row)
        console.print(pairs)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the ``concilium`` app."""
    app.command("eval")(eval_command)
