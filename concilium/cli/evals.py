"""``concilium evals ...``: evaluations stored in the database: list them, show one.

``concilium eval`` writes its results to the ledger's database when one is
configured (``--sql``); these commands read them back, from any machine that
reaches the database, without the output directory: ``show`` prints the same
tables and ``--json`` the same summary as the run's ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err, out

app = typer.Typer(help="Browse evaluations stored in the database (`concilium eval --sql`).",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%m-%d %H:%M")


@app.command("list")
@cli_errors
def list_command(
    limit: Annotated[int, typer.Option(min=1, help="How many evaluations, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List stored evaluations: dataset, teams, outcomes stored, complete or not."""
    from rich.console import Console
    from rich.table import Column, Table

    from concilium.memory.db import open_database
    from concilium.memory.evals import list_evals

    found = list_evals(open_database(), limit=limit)
    if as_json:
        for row, stored in found:
            typer.echo(json.dumps({
                "id": row.id, "dataset": row.dataset, "name": row.dataset_name,
                "teams": [t["name"] for t in row.teams], "items": len(row.item_keys),
                "memory": row.memory, "stored": stored, "complete": row.complete,
                "started_at": row.started_at, "finished_at": row.finished_at,
                "out_dir": row.out_dir}, default=str))
        return
    if not found:
        err.print("no evaluations stored yet (`concilium eval ... --sql` stores one)")
        return
    table = Table(Column("eval", no_wrap=True), "dataset", "teams", "items", "memory",
                  "stored", "complete", Column("started", no_wrap=True), "out",
                  box=None, header_style="bold")
    for row, stored in found:
        table.add_row(row.id, row.dataset_name, ", ".join(t["name"] for t in row.teams),
                      str(len(row.item_keys)), row.memory, str(stored),
                      "yes" if row.complete else "no", _when(row.started_at), row.out_dir or "")
    # piped output has no terminal to wrap at: print the table whole
    console = out if out.is_terminal else Console(file=out.file, width=200, highlight=False,
                                                        markup=False)
    console.print(table)
    err.print("stored: item outcomes in the database; `concilium evals show EVAL` for the "
              "summary")


@app.command("show")
@cli_errors
def show_command(
    ident: Annotated[str, typer.Argument(
        metavar="EVAL", show_default=False,
        help="Evaluation id, a unique prefix of it, or the eval's output directory.")],
    items: Annotated[bool, typer.Option(
        "--items", help="Print the item records the summary counts (as in items.jsonl), in "
                          "dataset order.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a stored evaluation's summary, rebuilt from the database alone."""
    from concilium.cli.eval import _print_tables
    from concilium.errors import ConfigError
    from concilium.eval.store import read_eval_id, stored_records, stored_summary
    from concilium.memory.db import open_database
    from concilium.memory.evals import find_eval

    path = Path(ident)
    if path.is_dir():
        found = read_eval_id(path)
        if found is None:
            raise ConfigError(f"{ident}: no evaluation id in this directory (it was run "
                              "without --sql)")
        ident = found
    db = open_database()
    if items:
        row = find_eval(db, ident)
        for record in stored_records(db, row):
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    row, summary = stored_summary(db, ident)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    err.print(f"evaluation {row.id}: {row.dataset}" + (f" ({row.out_dir})" if row.out_dir
                                                       else ""))
    _print_tables(summary)
