"""``concilium export``: the ledger as training data (SFT, DPO pairs, MALT credit trees)."""

from __future__ import annotations

import json
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err, out


class Format(StrEnum):
    sft = "sft"
    dpo = "dpo"
    malt = "malt"


def _write(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def _label(fmt: str, row: dict[str, Any]) -> str:
    return {"sft": "right", "dpo": row.get("source", ""), "malt": row.get("label", "")}[fmt]


@cli_errors
def export_command(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="sft, dpo or malt.")] = Format.sft,
    out_path: Annotated[Path | None, typer.Option(
        "--out", "-o", help="A .jsonl file (a role field in each row), or a directory: one "
        "file per role. Default: stdout.")] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Print counts per role and label "
                                        "instead of the rows.")] = False,
    team: Annotated[str | None, typer.Option(help="Only this team's runs.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Only runs of this strategy.")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs with a call to this model.")]
    = None,
    namespace: Annotated[str | None, typer.Option(help="Only runs in this memory namespace.")]
    = None,
    since: Annotated[str, typer.Option(help="7d, 24h, an ISO date, or all.")] = "all",
    until: Annotated[str | None, typer.Option(help="An ISO date/time (default: now).")] = None,
    outcome_known: Annotated[bool, typer.Option(
        "--outcome-known", help="Only runs scored against a reference.")] = False,
    held_out: Annotated[list[Path] | None, typer.Option(
        "--held-out", help="A dataset file (items whose split is not 'train'; all items when "
        "none has a split) or an eval --out directory whose held-out items are never exported. "
        "Repeatable.")] = None,
) -> None:
    """Export recorded runs as training data; secrets redacted, duplicates dropped."""
    from datetime import datetime

    from concilium.cli.stats import parse_since
    from concilium.errors import ConfigError
    from concilium.export import Filters, HeldOut, builder, read_runs
    from concilium.export.malt import nodes
    from concilium.memory.store import Memory

    try:
        end = datetime.fromisoformat(until) if until else None
    except ValueError:
        raise ConfigError(f"--until {until!r}: expected an ISO date or date/time") from None
    filters = Filters(team=team, strategy=strategy, model=model, namespace=namespace,
                      since=parse_since(since), until=end, outcome_known=outcome_known)
    held = HeldOut.from_paths(held_out or [])
    runs, skipped = read_runs(Memory.open(redis_url=False).db, filters, held)
    rows = builder(fmt.value)(runs)
    flat = nodes(rows) if fmt is Format.malt else rows
    if stats:
        counts = Counter((row["role"], _label(fmt.value, row)) for row in flat)
        out.print(f"{fmt.value}: {len(rows)} rows from {len(runs)} runs"
                  + (f" ({skipped} held-out runs left out)" if skipped else ""))
        for (role, label), count in sorted(counts.items()):
            out.print(f"  {role:<12} {label:<8} {count}")
        return
    if out_path is None:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False, default=str))
    elif out_path.is_dir() or out_path.suffix == "":
        out_path.mkdir(parents=True, exist_ok=True)
        by_role: dict[str, list[dict[str, Any]]] = {}
        for row in flat:
            by_role.setdefault(row["role"], []).append(row)
        for role, role_rows in sorted(by_role.items()):
            _write(role_rows, out_path / f"{fmt.value}-{role}.jsonl")
        if fmt is Format.malt:
            _write(rows, out_path / "malt-trees.jsonl")
        err.print(f"wrote {len(flat)} rows to {out_path}/ ({', '.join(sorted(by_role))})")
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        _write(rows, out_path)
        err.print(f"wrote {len(rows)} rows to {out_path}")
    if skipped:
        err.print(f"{skipped} held-out runs left out")
