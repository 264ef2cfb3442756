"""``concilium runs ...``: the run ledger: list runs, show one as a tree, follow one live."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err, out

app = typer.Typer(help="Browse the run ledger (every run, every model and tool call).",
                  no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="Run id, or a unique prefix of it.",
                                       show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _short(text: str | None, width: int = 60) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _when(value: Any, *, short: bool = False) -> str:
    if value is None:
        return ""
    return value.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def _tokens(prompt: int, completion: int) -> str:
    return f"{prompt}+{completion}"


@app.command("list")
@cli_errors
def list_command(
    team: Annotated[str | None, typer.Option(help="Only this team's runs.")] = None,
    status: Annotated[str | None, typer.Option(
        help="ok, stopped, failed, cancelled, paused or running.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    wide: Annotated[bool, typer.Option("--wide", "-w", help="Also show each task.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs with their outcome, calls, tokens and cost."""
    from rich.table import Column, Table

    from concilium.memory.ledger import list_runs
    from concilium.memory.store import Memory

    runs = list_runs(Memory.open(redis_url=False).db, team=team, status=status, limit=limit)
    if as_json:
        for run in runs:
            typer.echo(json.dumps(_run_json(run), default=str))
        return
    if not runs:
        err.print("no runs recorded yet")
        return
    table = Table(Column("run", no_wrap=True), "team", "status", "answer", "calls",
                  "tokens", "cost $", Column("started", no_wrap=True),
                  box=None, header_style="bold")
    if wide:
        table.add_column("task")
    for run in runs:
        calls = f"{run.llm_calls}" + (f"+{run.cached_calls}c" if run.cached_calls else "")
        right = "" if run.correct is None else (" right" if run.correct else " wrong")
        table.add_row(run.id, run.team, run.status + right, _short(run.answer, 10), calls,
                      str(run.prompt_tokens + run.completion_tokens), f"{run.cost:.4f}",
                      _when(run.started_at, short=True), *([_short(run.task, 60)] if wide else []))
    out.print(table)
    err.print("calls: model calls made (+Nc: served from the cache); "
              "`concilium runs show RUN` for the steps")


@app.command("show")
@cli_errors
def show_command(
    run_id: RunArg,
    messages: Annotated[bool, typer.Option("--messages", help="Also print every prompt.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: its steps as a tree, then tokens and cost per role."""
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    run = _find(run_id)
    if run is None:
        err.print(f"no run {run_id!r} in the ledger; see `concilium runs list`")
        raise typer.Exit(code=1)
    if as_json:
        data = _run_json(run)
        data["steps"] = [_step_json(s) for s in run.steps]
        typer.echo(json.dumps(data, default=str, indent=2))
        return
    verdict = "" if run.correct is None else (" right" if run.correct else " wrong")
    head = (f"run {run.id}  {run.team} ({run.strategy})  {run.status}{verdict}  "
            f"answer={run.answer}  {run.llm_calls} calls"
            + (f" +{run.cached_calls} cached" if run.cached_calls else "")
            + f"  {_tokens(run.prompt_tokens, run.completion_tokens)} tokens  ${run.cost:.4f}"
            + f"  {run.wall_ms:.0f} ms")
    tree = Tree(Text(head, style="bold"))
    tree.add(Text(f"task: {_short(run.task, 200)}"))
    if run.stop_reason or run.error:
        tree.add(Text(f"stop: {run.stop_reason or ''} {run.error or ''}".strip()))
    rounds: dict[int, Any] = {}
    for step in run.steps:
        branch = rounds.get(step.round)
        if branch is None:
            branch = rounds[step.round] = tree.add(Text(f"round {step.round}", style="cyan"))
        flags = []
        if step.cached:
            flags.append("cached")
        if step.answer_changed:
            flags.append("changed" + (f" {step.flip}" if step.flip else ""))
        if step.fallback_used:
            flags.append("fallback")
        cost = (f"{_tokens(step.prompt_tokens, step.completion_tokens)} tok  ${step.cost:.4f}  "
                if step.kind == "llm" else "")
        label = (f"#{step.seq} {step.node} ({step.role}) {step.model}  {cost}"
                 f"{step.latency_ms:.0f} ms  answer={step.answer}"
                 + (f"  [{', '.join(flags)}]" if flags else ""))
        called = step.parsed if isinstance(step.parsed, dict) else {}
        if step.kind == "tool" and "call_id" in called:  # a call a model made: input → output
            given = " ".join(str(m.get("content", "")) for m in step.messages or [])
            label = (f"#{step.seq} {step.node} ({step.role}) tool {step.model}  "
                     f"{step.latency_ms:.0f} ms" + ("" if called.get("ok", True) else "  [error]"))
            branch.add(Text(label)).add(Text(f"{_short(given, 100)} → {_short(step.output, 100)}",
                                             style="dim"))
            continue
        node = branch.add(Text(label))
        if messages:
            for message in step.messages:
                node.add(Text(f"{message.get('role')}: {message.get('content')}", style="dim"))
        node.add(Text(f"→ {_short(step.output, 160)}", style="dim"))
    out.print(tree)
    table = Table("role", "calls", "cached", "tool calls", "tokens in", "tokens out", "cost $",
                  "ms", title="per role")
    for role, row in _per_role(run.steps).items():
        table.add_row(role, str(row["calls"]), str(row["cached"]), str(row["tools"]),
                      str(row["in"]), str(row["out"]), f"{row['cost']:.4f}", f"{row['ms']:.0f}")
    out.print(table)
    if run.status != "ok":
        err.print(f"not finished; to go on from its last checkpoint: concilium runs resume "
                  f"{run.id}")


@app.command("follow")
@cli_errors
def follow_command(
    run_id: RunArg,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 600.0,
) -> None:
    """Print a run's steps as they happen, from another process (needs CONCILIUM_REDIS_URL)."""
    from concilium.errors import ConfigError
    from concilium.memory.store import Memory

    memory = Memory.open()
    if memory.redis is None:
        raise ConfigError("following a run needs Redis: set CONCILIUM_REDIS_URL")
    for event in memory.redis.follow(run_id, timeout_s=timeout):
        kind = event.get("type")
        if kind == "step":
            step = event.get("step", {})
            out.print(f"#{event.get('seq')} {step.get('node')} ({step.get('role')}) "
                      f"{step.get('model')} answer={step.get('answer')}")
        elif kind == "run_start":
            out.print(f"run {run_id} started: {event.get('team')} on {_short(event.get('task'))}")
        elif kind == "run_end":
            out.print(f"run {run_id} ended: {event.get('status')} answer={event.get('answer')}")
        else:
            typer.echo(json.dumps(event, default=str))


@app.command("resume")
@cli_errors
def resume_command(
    run_id: RunArg,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Finish it on this litellm model.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON result.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    max_llm_calls: Annotated[
        int | None, typer.Option(min=1, help="New call budget (to go on after a budget stop).")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="New token budget.")] = None,
    max_cost: Annotated[float | None, typer.Option(min=0, help="New cost budget ($).")] = None,
    timeout: Annotated[float | None, typer.Option(min=0, help="New wall-clock limit (s).")] = None,
    answer: Annotated[str | None, typer.Option(
        "--answer", "-a", help="A person's reply to the run's pending question (a run "
        "paused for a person).")] = None,
) -> None:
    """Finish a run that was killed, stopped or paused, from its last checkpoint.

    No model call that had completed is made again. Budgets count the whole run, the
    part before the stop included; raise them with the options to go on after one. A
    run paused for a person goes on with --answer (further questions are asked at this
    terminal, if it is one).

    Example: concilium runs resume 3f2a9c --answer "no, 17 * 24 is 408"
    """
    import asyncio

    from concilium.cli.run import finish, outcome, print_step
    from concilium.team import resume_run

    known = _find(run_id)  # a unique prefix is enough, as for `runs show`
    run_id = known.id if known is not None else run_id
    if known is not None and known.status != "running" and not quiet and not json_out:
        err.print(f"run {run_id} ended {known.status}"
                  + (f" ({known.stop_reason})" if known.stop_reason else "")
                  + "; resuming from its last checkpoint")
    if not quiet and not json_out:
        err.print(f"resuming run {run_id}")
    with outcome(run_id, json_out):
        limits = {key: value for key, value in (
            ("max_llm_calls", max_llm_calls), ("max_tokens", max_tokens),
            ("max_cost", max_cost), ("timeout_s", timeout)) if value is not None}
        from concilium.cli.ask import at_terminal, terminal_ask

        finish(asyncio.run(resume_run(run_id, model=model, limits=limits, answer=answer,
                                      ask=terminal_ask if at_terminal() else None,
                                      on_step=None if quiet or json_out else print_step)),
               json_out)


def _find(run_id: str) -> Any:
    """The ledger row of ``run_id`` or a unique prefix of it (``None``: unknown); an
    ambiguous prefix ends the command with exit code 2."""
    from concilium.memory.ledger import AmbiguousRunId, find_run
    from concilium.memory.store import Memory

    try:
        return find_run(Memory.open(redis_url=False).db, run_id)
    except AmbiguousRunId as error:
        err.print(str(error))
        raise typer.Exit(code=2) from None


def _per_role(steps: list[Any]) -> dict[str, dict[str, Any]]:
    roles: dict[str, dict[str, Any]] = {}
    for step in steps:
        row = roles.setdefault(step.role, {"calls": 0, "cached": 0, "tools": 0, "in": 0,
                                           "out": 0, "cost": 0.0, "ms": 0.0})
        if step.kind != "llm":
            row["tools"] += 1
        elif step.cached:
            row["cached"] += 1
        else:
            row["calls"] += 1
        row["in"] += step.prompt_tokens
        row["out"] += step.completion_tokens
        row["cost"] += step.cost
        row["ms"] += step.latency_ms
    return roles


def _run_json(run: Any) -> dict[str, Any]:
    keys = ("id", "team", "team_hash", "strategy", "namespace", "task", "status", "stop_reason",
            "answer", "reference", "correct", "llm_calls", "cached_calls", "from_cache",
            "tool_calls", "prompt_tokens", "completion_tokens", "cost", "wall_ms", "recalled",
            "started_at", "ended_at", "error")
    return {key: getattr(run, key) for key in keys}


def _step_json(step: Any) -> dict[str, Any]:
    keys = ("seq", "uid", "node", "role", "kind", "model", "round", "messages", "output",
            "parsed", "answer", "prompt_tokens", "completion_tokens", "cost", "latency_ms",
            "attempts", "fallback_used", "cached", "answer_changed", "flip", "at")
    return {key: getattr(step, key) for key in keys}
