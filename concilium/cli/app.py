"""The ``concilium`` command: one Typer sub-app per command group.

Only Typer is imported here; each command imports what it needs when it runs,
so ``concilium --help`` does not pay for LangGraph or litellm.
"""

from __future__ import annotations

import typer

from concilium.cli import batch as batch_cmd
from concilium.cli import eval as eval_cmd
from concilium.cli import evals as evals_cmd
from concilium.cli import export as export_cmd
from concilium.cli import memory as memory_cmd
from concilium.cli import run as run_cmd
from concilium.cli import runs as runs_cmd
from concilium.cli import serve as serve_cmd
from concilium.cli import stats as stats_cmd
from concilium.cli import teams as teams_cmd
from concilium.cli.help import HelpGroup

app = typer.Typer(
    name="concilium",
    help="Run teams of LLM agents (generate, verify, critique, debate, reflect) defined in "
    "YAML.\n\nShell completion: concilium --install-completion (bash, zsh, fish, "
    "PowerShell); every command has --help with an example.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=HelpGroup,
)
app.command("run")(run_cmd.run_command)
app.command("serve")(serve_cmd.serve_command)
app.command("export")(export_cmd.export_command)
eval_cmd.register(app)
app.command("batch")(batch_cmd.batch_command)
app.add_typer(teams_cmd.app, name="teams")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(evals_cmd.app, name="evals")
app.add_typer(memory_cmd.app, name="memory")
app.add_typer(stats_cmd.app, name="stats")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
