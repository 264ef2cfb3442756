"""``concilium teams ...``: list, show, validate, draw and describe team files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from concilium.cli.common import cli_errors, err, out

app = typer.Typer(help="Inspect and validate team files.", no_args_is_help=True)

TeamArg = Annotated[Path, typer.Argument(help="Team YAML file.", show_default=False)]


@app.command("list")
@cli_errors
def list_teams(
    directory: Annotated[Path, typer.Argument(help="Directory of team files.")] = Path(
        "examples/teams"
    ),
) -> None:
    """List the team files in DIRECTORY with their strategy and roles."""
    from rich.table import Table
    from rich.text import Text

    from concilium.errors import ConfigError, TeamFileError
    from concilium.loader import load_spec

    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory")
    table = Table("file", "name", "strategy", "roles", "description")
    broken = 0
    for path in sorted(directory.glob("*.y*ml")):
        try:
            spec = load_spec(path)
        except TeamFileError as error:
            broken += 1
            table.add_row(path.name, Text("invalid", style="red"), "", "", str(error))
            continue
        table.add_row(path.name, spec.name, spec.strategy.name, ", ".join(spec.roles),
                      spec.description)
    out.print(table)
    if broken:
        raise typer.Exit(code=2)


@app.command("show")
@cli_errors
def show(team: TeamArg) -> None:
    """Print the team as loaded: every field, with defaults filled in."""
    import yaml

    from concilium.loader import load_spec
    from concilium.settings import get_settings

    spec = load_spec(team)
    data = spec.model_dump(mode="json", exclude_none=True)
    default = spec.model or get_settings().model
    data["resolved_models"] = {k: r.model or default for k, r in spec.roles.items()}
    out.print(yaml.safe_dump(data, sort_keys=False).rstrip())


@app.command("validate")
@cli_errors
def validate(
    teams: Annotated[list[Path], typer.Argument(help="Team YAML files.", show_default=False)],
) -> None:
    """Check team files; print one line per problem and exit 2 if any is invalid."""
    from concilium.errors import TeamFileError
    from concilium.loader import load_spec

    failed = 0
    for path in teams:
        try:
            spec = load_spec(path)
        except TeamFileError as error:
            failed += 1
            err.print(f"invalid: {error}")
            continue
        out.print(f"ok: {path} ({spec.name}, strategy {spec.strategy.name})")
    if failed:
        raise typer.Exit(code=2)


@app.command("schema")
@cli_errors
def schema(
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of team files (point your editor's YAML plugin at it)."""
    from concilium.loader import team_json_schema

    text = json.dumps(team_json_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")


@app.command("graph")
@cli_errors
def graph(team: TeamArg) -> None:
    """Print the team's LangGraph as a Mermaid flowchart."""
    from concilium.team import load_team

    typer.echo(load_team(team).mermaid())
