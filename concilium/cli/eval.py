"""``concilium eval TEAM... --dataset D``: compare teams side by side on a dataset.

Shows a progress bar per team (saying when one of its models is cooling down
after repeated faults), then a table (accuracy over the completed items with
its 95 % interval, failed items apart, calls, tokens, cost, latency, flips) and
paired comparisons; writes ``items.jsonl``, ``summary.json`` and a report with
plots to ``--out``, and with a database configured (or ``--sql``) the results to
SQL as well (``concilium evals list/show``). Items that failed for a transient
reason (rate limits, 5xx, timeouts) are queued again (``--requeue`` rounds,
growing backoff).
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


class GraderKind(StrEnum):
    """Who grades: the dataset's answers (exact) or a judge model/team as well."""

    exact = "exact"
    judge = "judge"


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
    requeue: Annotated[
        int, typer.Option(help="Rounds an item that failed for a transient reason "
                               "(rate limit, 5xx, timeout) is queued again.")
    ] = 3,
    requeue_backoff: Annotated[
        float, typer.Option(help="Seconds before an item's first re-queue; doubles each round.")
    ] = 2.0,
    cooldown: Annotated[
        float | None, typer.Option(help="Seconds a model's calls pause after repeated transient "
                                        "faults (a longer Retry-After wins) [default: 5].",
                                   show_default=False)
    ] = None,
    reveal_reference: Annotated[
        bool, typer.Option("--reveal-reference",
                           help="Let `check: reference` verifiers see the dataset's answers "
                                "(they then grade with the key; the report marks them).")
    ] = False,
    report: Annotated[ReportKind, typer.Option(help="Report page format.")] = ReportKind.md,
    grader: Annotated[GraderKind, typer.Option(
        help="exact: match the dataset's answers; judge: also a judge, pointwise per answer "
             "and pairwise (both orders) per pair of teams.")] = GraderKind.exact,
    judge: Annotated[str | None, typer.Option(
        help="The judge for --grader judge: a team file (*.yaml) or a model string.",
        show_default=False)] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print summary.json to stdout instead of tables.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    ray: Annotated[str | None, typer.Option(help="Run on Ray: 'auto' or ray://host:10001.")] = None,
    workers: Annotated[int, typer.Option(help="Ray actors (with --ray).")] = 2,
    sql: Annotated[bool | None, typer.Option(
        "--sql/--no-sql",
        help="Also write the results to the ledger's database (`concilium evals show`) "
             "[default: when CONCILIUM_DATABASE_URL is set or --memory is read/learn].",
        show_default=False)] = None,
) -> None:
    """Evaluate each TEAM on a dataset: accuracy (95% CI), calls, tokens, cost, latency, flips."""
    import asyncio
    import json
    from dataclasses import replace

    from concilium.agents.breaker import DEFAULT_BREAKER
    from concilium.errors import ConfigError
    from concilium.eval.datasets import load_dataset
    from concilium.eval.report import write_report
    from concilium.eval.runner import EvalOptions, Evaluation
    from concilium.eval.store import EvalStore, wanted
    from concilium.team import load_team

    loaded = [load_team(path, model=model) for path in teams]
    data = load_dataset(dataset, question_field=question_field, answer_field=answer_field,
                        limit=limit, offset=offset, shuffle=shuffle, seed=seed)
    if not data.items:
        raise ConfigError(f"no items selected from {dataset} ({data.total} items, "
                          f"--offset {offset}, --limit {limit})")
    if cooldown is not None and cooldown < 0:
        raise ConfigError(f"--cooldown must be 0 or more, not {cooldown:g}")
    breaker = (None if cooldown is None
               else replace(DEFAULT_BREAKER, cooldown_s=cooldown,
                            max_cooldown_s=max(cooldown, DEFAULT_BREAKER.max_cooldown_s)))
    options = EvalOptions(concurrency=concurrency, item_timeout_s=timeout, memory=memory.value,
                          seed=seed, answer_format=answer_format.value if answer_format else None,
                          tolerance=tolerance, requeue_rounds=requeue,
                          requeue_backoff_s=requeue_backoff, breaker=breaker,
                          reveal_reference=reveal_reference)
    target = out_dir if out_dir is not None else Path("reports") / data.name
    evaluation = Evaluation(loaded, data, target, options)
    store = None
    if wanted(memory.value, sql):
        store = evaluation.store = EvalStore.open(target)  # before any item: fails fast
    judged = None
    if grader is GraderKind.judge:
        from concilium.eval.judge import load_judge

        if judge is None:
            raise ConfigError("--grader judge needs --judge TEAM.yaml or --judge MODEL")
        judged = load_judge(judge)

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
    if judged is not None and not interrupted:
        from concilium.eval.judge import judge_evaluation, judge_markdown

        records = [r for rows in evaluation.records().values() for r in rows]
        try:
            judged_summary = asyncio.run(judge_evaluation(
                judged, data.items, records, [t.name for t in loaded], target,
                concurrency=concurrency))
        except KeyboardInterrupt:
            interrupted = True
    summary = evaluation.write_summary(complete=False if interrupted else None)
    written = write_report(summary, evaluation.records(), target, report.value)
    if judged is not None and not interrupted:
        (target / "judge.md").write_text(judge_markdown(judged_summary), encoding="utf-8")
        (target / "judge.json").write_text(json.dumps(judged_summary, indent=2), encoding="utf-8")
        if written.path.suffix == ".md":
            with written.path.open("a", encoding="utf-8") as page:
                page.write("\n" + judge_markdown(judged_summary))
    if json_out:
        out.print_json(json.dumps(summary))
    else:
        _print_tables(summary)
        if judged is not None and not interrupted:
            out.print(judge_markdown(judged_summary))
    if not quiet and not json_out:
        files = ", ".join(p.name for p in [evaluation.results_path, evaluation.summary_path,
                                           written.path, *written.images])
        err.print(f"wrote {target}/: {files}")
        if store is not None:
            err.print(f"stored as evaluation {store.eval_id} in the database: "
                      f"concilium evals show {store.eval_id}")
        for note in written.notes:
            err.print(f"note: {note}")
    if interrupted:
        raise KeyboardInterrupt
    failed = sum(t["failed"] for t in summary["teams"])
    if failed:
        from rich.markup import escape

        err.print(f"[red]{failed} item run(s) failed[/red] after {requeue} re-queue round(s) "
                  f"(their `error` is in {escape(str(evaluation.results_path))}); they are not "
                  "counted in accuracy; rerun the same command to retry just those", markup=True)
        raise typer.Exit(code=1)


class _Bars:
    """One rich progress bar per team on stderr; yields the runner's ``on_record`` callback.

    Besides accuracy (over completed items) and tokens, a bar counts failed items
    and says which of its team's models is cooling down, read from the circuit
    breakers at every refresh (a paused run is not a hung run).
    """

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
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        evaluation = self.evaluation

        class Cooling(ProgressColumn):
            """``model X cooling down 12 s`` while a breaker holds one of the team's models."""

            def render(self, task: Any) -> Text:
                paused = evaluation.cooling(task.fields["index"])
                return Text("; ".join(paused), style="yellow")

        self.evaluation.load()
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),  # team names are data
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]}"),
            TextColumn("{task.fields[tokens]} tok"),
            TextColumn("{task.fields[failed]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            Cooling(),
            console=err,
        )
        width = max(len(slot.team.name) for slot in self.evaluation.slots)
        for index, slot in enumerate(self.evaluation.slots):
            tally = slot.tally
            self.ids.append(self.bars.add_task(
                slot.team.name.ljust(width), total=tally.total, completed=tally.done,
                acc=_acc(tally), tokens=f"{tally.tokens:,}", failed=_failed(tally), index=index,
            ))
        self.bars.start()
        return self.update

    def update(self, index: int, record: dict[str, Any]) -> None:
        tally = self.evaluation.slots[index].tally
        self.bars.update(self.ids[index], completed=tally.done, acc=_acc(tally),
                         tokens=f"{tally.tokens:,}", failed=_failed(tally))

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()


def _acc(tally: Any) -> str:
    accuracy = tally.accuracy
    return "  —  " if accuracy is None else f"{100 * accuracy:5.1f}%"


def _failed(tally: Any) -> str:
    return f"{tally.failed} failed" if tally.failed else ""


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
    console = out if out.is_terminal else Console(file=out.file, width=160, highlight=False,
                                                        markup=False)
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
