"""``concilium memory ...``: list, search, show, forget, distill, quarantine and export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err, out

app = typer.Typer(help="The reflection memory: lessons teams learned, with provenance.",
                  no_args_is_help=True)

NamespaceOpt = Annotated[str | None, typer.Option("--namespace", "-n",
                                                  help="Only this namespace.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON Lines instead of a table.")]
VerifiedOpt = Annotated[bool, typer.Option(
    "--verified", help="Only lessons whose outcome was checked (ground truth or a tool).")]


def _memory() -> Any:
    from concilium.memory.store import Memory

    return Memory.open()


def _short(text: str | None, width: int = 70) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _table(lessons: list[Any], *, scores: bool = False) -> None:
    from rich.table import Table

    columns = ["id", "namespace", "outcome", "checked by", "used", "lesson", "task"]
    table = Table(*(["score", *columns] if scores else columns), box=None,
                  header_style="bold", caption="used: recalls (followed by right/wrong answers)")
    for lesson in lessons:
        row = [str(lesson.id), lesson.namespace, lesson.outcome, lesson.verified_by or "-",
               f"{lesson.use_count} ({lesson.success_count}/{lesson.failure_count})",
               _short(lesson.lesson), _short(lesson.task, 40)]
        table.add_row(*([f"{lesson.score:.2f}", *row] if scores else row))
    out.print(table)


def _echo_json(lessons: list[Any]) -> None:
    for lesson in lessons:
        typer.echo(json.dumps(lesson.to_json(), ensure_ascii=False))


@app.command("list")
@cli_errors
def list_command(
    namespace: NamespaceOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    verified: VerifiedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List stored lessons, newest first (and, without --namespace, every namespace)."""
    memory = _memory()
    lessons = memory.lessons(namespace=namespace, limit=limit, verified_only=verified)
    if as_json:
        _echo_json(lessons)
        return
    if namespace is None:
        spaces = memory.namespaces()
        if not spaces:
            err.print("no lessons stored yet")
            return
        out.print("namespaces: " + ", ".join(f"{ns} ({n})" for ns, n in spaces))
    _table(lessons)


@app.command("search")
@cli_errors
def search_command(
    query: Annotated[str, typer.Argument(help="Words to look for in lessons and their tasks.")],
    namespace: NamespaceOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="How many results.")] = 20,
    verified: VerifiedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Full-text search of lessons, best match first (what recall would rank)."""
    lessons = _memory().search(query, namespace=namespace, limit=limit, verified_only=verified)
    if as_json:
        _echo_json(lessons)
        return
    if not lessons:
        err.print(f"no lesson matches {query!r}")
        return
    _table(lessons, scores=True)


@app.command("show")
@cli_errors
def show_command(
    reflection_id: Annotated[int, typer.Argument(help="Lesson id.", show_default=False)],
) -> None:
    """Show one lesson with its provenance, usefulness and the behaviors distilled from it."""
    from concilium.memory.usefulness import usefulness

    memory = _memory()
    lesson = memory.get(reflection_id)
    if lesson is None:
        err.print(f"no lesson {reflection_id}; see `concilium memory list`")
        raise typer.Exit(code=1)
    fields = [
        ("id", lesson.id), ("namespace", lesson.namespace), ("lesson", lesson.lesson),
        ("task", lesson.task), ("outcome", lesson.outcome),
        ("verified by", lesson.verified_by or "nobody (not recalled by default)"),
        ("run", lesson.run_id or "-"), ("team", lesson.team or "-"),
        ("model", lesson.model or "-"), ("created", lesson.created_at),
        ("recalled", f"{lesson.use_count} times, followed by {lesson.success_count} right and "
                     f"{lesson.failure_count} wrong answers"),
        ("usefulness", usefulness(memory, "lesson", lesson.id).summary()),
        ("state", f"quarantined ({lesson.quarantine_reason})" if lesson.quarantined
                  else "active"),
    ]
    for name, value in fields:
        out.print(f"{name + ':':<12} {value}")
    behaviors = [b for b in memory.behaviors(lesson.namespace)
                 if any(s.id == lesson.id for s in b.sources)]
    for behavior in behaviors:
        out.print(f"{'behavior:':<12} #{behavior.id} {behavior.name}: {behavior.procedure}")


@app.command("forget")
@cli_errors
def forget_command(
    ids: Annotated[list[int] | None, typer.Argument(help="Lesson ids to delete.")] = None,
    namespace: NamespaceOpt = None,
    run: Annotated[str | None, typer.Option("--run", help="Lessons from this run.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
) -> None:
    """Delete lessons: by id, or every lesson of a namespace (--namespace) or run (--run)."""
    from concilium.errors import ConfigError

    ids = list(ids or [])
    if not ids and namespace is None and run is None:
        raise ConfigError("say what to forget: lesson ids, --namespace NS or --run RUN")
    memory = _memory()
    if not ids and not yes:
        what = f"namespace {namespace!r}" if namespace is not None else f"run {run!r}"
        count = memory.count(namespace) if namespace is not None and run is None else None
        size = f" ({count} lessons)" if count is not None else ""
        typer.confirm(f"forget every lesson of {what}{size}?", abort=True, err=True)
    gone = memory.forget(ids, namespace=namespace, run_id=run)
    err.print(f"forgot {gone} lesson{'s' if gone != 1 else ''}")
    if ids and gone < len(ids):
        raise typer.Exit(code=1)


@app.command("distill")
@cli_errors
def distill_command(
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Whose lessons.")],
    model: Annotated[str | None, typer.Option(help="Model that writes behaviors.")] = None,
    min_group: Annotated[int, typer.Option(min=2, help="Similar lessons that recur.")] = 3,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0,
                                             help="Word overlap of similar lessons.")] = 0.3,
    all_outcomes: Annotated[bool, typer.Option(
        "--all", help="Also use lessons whose outcome nobody checked.")] = False,
) -> None:
    """Condense recurring lessons of a namespace into named behaviors (the handbook)."""
    import asyncio

    from concilium.memory.distill import distill

    made = asyncio.run(distill(_memory(), namespace=namespace, model=model,
                               min_group=min_group, threshold=threshold,
                               verified_only=not all_outcomes))
    if not made:
        err.print(f"nothing to distill in {namespace!r} (no {min_group} similar new lessons)")
        return
    for behavior in made:
        out.print(f"#{behavior.id} {behavior.name}: {behavior.procedure} "
                  f"(from lessons {', '.join(map(str, behavior.sources))})")


@app.command("behaviors")
@cli_errors
def behaviors_command(
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List behaviors with their uses, measured usefulness, source runs and quarantine."""
    from concilium.memory.usefulness import QUARANTINE_RULE, usefulness

    memory = _memory()
    behaviors = memory.behaviors(namespace)
    if not behaviors:
        err.print("no behaviors yet; see `concilium memory distill`")
        return
    rows = []
    for behavior in behaviors:
        stats = usefulness(memory, "behavior", behavior.id)
        rows.append({
            "id": behavior.id, "namespace": behavior.namespace, "name": behavior.name,
            "procedure": behavior.procedure, "uses": behavior.use_count,
            "right": behavior.right_count, "wrong": behavior.wrong_count,
            "usefulness": stats.difference, "usefulness_detail": stats.summary(),
            "source_lessons": [s.id for s in behavior.sources],
            "source_runs": list(behavior.source_runs or []),
            "quarantined": behavior.quarantined, "quarantine_reason": behavior.quarantine_reason,
        })
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table("id", "namespace", "behavior", "uses (right/wrong)", "usefulness",
                  "source", "state", box=None, header_style="bold",
                  caption="usefulness: runs using it vs comparable runs (same team and "
                          f"namespace) without it; {QUARANTINE_RULE}")
    for row in rows:
        runs = row["source_runs"]
        source = (f"lessons {', '.join(map(str, row['source_lessons']))}"
                  + (f"; runs {', '.join(runs[:3])}{'…' if len(runs) > 3 else ''}" if runs
                     else ""))
        table.add_row(str(row["id"]), row["namespace"],
                      _short(f"{row['name']}: {row['procedure']}", 60),
                      f"{row['uses']} ({row['right']}/{row['wrong']})", row["usefulness_detail"],
                      _short(source, 40),
                      "quarantined" if row["quarantined"] else "active")
    out.print(table)


KindOpt = Annotated[bool, typer.Option("--behavior", "-b",
                                       help="ID is a behavior's (default: a lesson's).")]


@app.command("quarantine")
@cli_errors
def quarantine_command(
    item_id: Annotated[int, typer.Argument(help="Lesson (or --behavior) id.",
                                           show_default=False)],
    behavior: KindOpt = False,
    reason: Annotated[str, typer.Option(help="Why (kept with it).")] = "by hand",
) -> None:
    """Stop recalling a lesson or behavior; it is kept (see `memory restore`)."""
    from concilium.memory.usefulness import quarantine

    kind = "behavior" if behavior else "lesson"
    if not quarantine(_memory(), kind, item_id, reason):
        err.print(f"no {kind} {item_id}")
        raise typer.Exit(code=1)
    err.print(f"{kind} {item_id} quarantined: it is kept and no longer recalled")


@app.command("restore")
@cli_errors
def restore_command(
    item_id: Annotated[int, typer.Argument(help="Lesson (or --behavior) id.",
                                           show_default=False)],
    behavior: KindOpt = False,
) -> None:
    """Recall a quarantined lesson or behavior again."""
    from concilium.memory.usefulness import restore

    kind = "behavior" if behavior else "lesson"
    if not restore(_memory(), kind, item_id):
        err.print(f"no {kind} {item_id}")
        raise typer.Exit(code=1)
    err.print(f"{kind} {item_id} restored: it is recalled again")


@app.command("export")
@cli_errors
def export_command(
    namespace: NamespaceOpt = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False,
                                                help="File to write (default: stdout).")] = None,
) -> None:
    """Export lessons with provenance as JSON Lines (one lesson per line)."""
    import sys

    memory = _memory()
    if output is None:
        count = memory.export(sys.stdout, namespace=namespace)
    else:
        with output.open("w", encoding="utf-8") as handle:
            count = memory.export(handle, namespace=namespace)
    err.print(f"exported {count} lesson{'s' if count != 1 else ''}")
