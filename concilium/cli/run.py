"""``concilium run TEAM TASK``: one task, live progress, then the answer and its cost."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err, out

__all__ = ["run_command"]


@cli_errors
def run_command(
    team: Annotated[Path, typer.Argument(help="Team YAML file.", show_default=False)],
    task: Annotated[str, typer.Argument(help="The task text, or - to read it from stdin.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Run every role on this litellm model.")
    ] = None,
    reference: Annotated[
        str | None, typer.Option("--reference", "-r", help="Known right answer, to score the run.")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON result object instead.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
    stream: Annotated[
        bool, typer.Option("--stream/--no-stream",
                           help="Show each role's text as it is generated (with live progress).")
    ] = True,
    seed: Annotated[int, typer.Option(help="Base sampling seed.")] = 0,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Id for the run (default: a new one).")
    ] = None,
    tests: Annotated[
        Path | None,
        typer.Option("--tests", exists=True, dir_okay=False, readable=True,
                     help="Test code for a 'check: tests' verifier; the generator never "
                          "sees it."),
    ] = None,
) -> None:
    """Run TASK with the team in TEAM and print the answer, calls, tokens, cost and time.

    A team with a person in it (role: human, or interrupt: on a role) asks at this
    terminal; when nobody is there (stdin is not a terminal) the run stops paused and
    prints the command that answers it: concilium runs resume RUN --answer '...'.

    Example: concilium run examples/teams/gvr.yaml "What is 17 * 24 + 3?"
    """
    import asyncio

    from concilium.agents.context import new_run_id
    from concilium.errors import ConfigError
    from concilium.team import load_team

    if task == "-":
        task = sys.stdin.read()
    if not task.strip():
        raise ConfigError("the task is empty")
    loaded = load_team(team, model=model)
    run_id = run_id or new_run_id()
    if not quiet and not json_out:
        from rich.markup import escape

        err.print(f"[bold]{escape(loaded.name)}[/bold] ({escape(loaded.spec.strategy.name)}) "
                  f"run {escape(run_id)}", markup=True)
    on_step = None if quiet or json_out else print_step
    from concilium.cli.ask import at_terminal, terminal_ask

    asker = terminal_ask if at_terminal() else None
    view = None
    if stream and on_step is not None:
        from concilium.cli.live import LiveView

        # a person may be asked at this terminal: plain lines, no Live area over the prompt
        view = LiveView(err, print_step, tty=False if asker is not None else None)
        on_step = view.step
    with outcome(run_id, json_out), view or contextlib.nullcontext():
        run = loaded.arun(task, reference=reference, seed=seed, on_step=on_step, run_id=run_id,
                          tests=tests.read_text("utf-8") if tests is not None else None,
                          ask=asker, on_delta=view.delta if view is not None else None)
        result = asyncio.run(run)
    finish(result, json_out)


def finish(result: Any, json_out: bool) -> None:
    """Print a finished run: the answer and its cost, or the whole result as JSON; a run
    paused for a person also says how to answer it."""
    if result.status == "paused":
        from concilium.cli.ask import paused_note

        paused_note(result)
    if json_out:
        out.print_json(result.model_dump_json())
        return
    _print_result(result)


@contextlib.contextmanager
def outcome(run_id: str, json_out: bool) -> Iterator[None]:
    """A failed run still prints its result with ``--json``; Ctrl-C says how to resume."""
    from concilium.team import RunFailed

    try:
        yield
    except RunFailed as failure:
        if json_out:
            out.print_json(failure.result.model_dump_json())
        raise
    except KeyboardInterrupt:
        err.print(f"interrupted; finish it with: concilium runs resume {run_id}")
        raise typer.Exit(130) from None


def print_step(step: Any) -> None:
    answer = step.get("answer")
    tokens = (
        f"{step.get('prompt_tokens', 0)}→{step.get('completion_tokens', 0)} tok"
        if step.get("kind") == "llm"
        else "person" if step.get("kind") == "human" else "tool"
    )
    extra = ""
    if step.get("cached"):
        extra += " (cached)"
    if step.get("flip"):
        extra += f" [{step['flip']}]"
    elif step.get("answer_changed"):
        extra += " [changed]"
    verdict = step.get("parsed", {}).get("accepted")
    if verdict is not None and step.get("role") == "verifier":
        extra += " accepted" if verdict else " rejected"
    if "call_id" in (step.get("parsed") or {}):  # a tool call a model made: input → output
        given = " ".join(str(m.get("content", "")) for m in step.get("messages") or [])
        extra += f"  {given[:80]} → {' '.join(str(step.get('output', '')).split())[:80]}"
    err.print(
        f"  r{step.get('round', 0)} {step.get('node', '?'):<12} {step.get('model', ''):<20} "
        f"{tokens:>14} {step.get('latency_ms', 0):>7.0f} ms  answer={answer}{extra}"
    )


def _print_result(result: Any) -> None:
    usage = result.usage
    out.print(f"Answer: {result.answer if result.answer is not None else '(none)'}")
    line = (
        f"{usage.llm_calls} LLM calls · {usage.total_tokens} tokens · ${usage.cost:.4f} · "
        f"{result.wall_ms / 1000:.1f} s"
    )
    if result.stop_reason:
        line += f" · stop: {result.stop_reason}"
    if result.correct is not None:
        line += " · correct" if result.correct else " · wrong"
    out.print(line)
