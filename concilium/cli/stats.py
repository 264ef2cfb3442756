"""``concilium stats``: what the model calls cost, by team, role and model, over a time window."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from concilium.cli.common import cli_errors, err, out

app = typer.Typer(help="Cost and tokens by team, role and model over a time window.")

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _calls(calls: int, cached: int) -> str:
    return f"{calls}+{cached}c" if cached else str(calls)


def parse_since(value: str) -> datetime | None:
    """``7d``, ``24h``, ``30m``, ``2w``, an ISO date/time, or ``all`` (no limit)."""
    from concilium.errors import ConfigError

    value = value.strip().lower()
    if value in ("all", ""):
        return None
    match = _SPAN.match(value)
    if match:
        span = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return datetime.now(UTC) - span
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: expected a span like 7d, 24h, 30m, 2w, an ISO date, or all"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.callback(invoke_without_command=True)
@cli_errors
def stats_command(
    since: Annotated[str, typer.Option(
        help="Window start: 7d, 24h, 30m, an ISO date, or all.")] = "7d",
    by: Annotated[str, typer.Option(
        help="Group by a comma list of: team, role, model, strategy, kind.")] = "team,role,model",
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON Lines.")] = False,
) -> None:
    """Calls, cache hits, tokens, cost and time of model and tool calls, grouped."""
    from rich.table import Column, Table

    from concilium.errors import ConfigError
    from concilium.memory.ledger import GROUPS, usage_stats
    from concilium.memory.store import Memory

    groups = [g.strip() for g in by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ConfigError(f"--by {by!r}: choose from {', '.join(GROUPS)}")
    start = parse_since(since)
    rows = usage_stats(Memory.open(redis_url=False).db, since=start, by=groups, team=team)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str))
        return
    if not rows:
        err.print(f"no runs since {start:%Y-%m-%d %H:%M} UTC" if start else "no runs recorded")
        return
    table = Table(*(Column(g, no_wrap=True) for g in groups), "runs", "calls", "tools", "in",
                  "out", "cost $", "ms", box=None, header_style="bold",
                  title=f"since {start:%Y-%m-%d %H:%M} UTC" if start else "all time",
                  caption="calls: model calls made (+Nc: served from the cache); "
                  "in/out: tokens; ms: time spent in calls")
    totals: dict[str, Any] = {"calls": 0, "cached": 0, "tool_calls": 0, "prompt_tokens": 0,
                              "completion_tokens": 0, "cost": 0.0, "latency_ms": 0.0}
    for row in rows:
        for key in totals:
            totals[key] += row[key] or 0
        table.add_row(*(str(row[g]) for g in groups), str(row["runs"]),
                      _calls(row["calls"], row["cached"]), str(row["tool_calls"]),
                      str(row["prompt_tokens"]), str(row["completion_tokens"]),
                      f"{row['cost']:.4f}", f"{row['latency_ms']:.0f}")
    table.add_row("total", *([""] * (len(groups) - 1)), "",
                  _calls(totals["calls"], totals["cached"]), str(totals["tool_calls"]),
                  str(totals["prompt_tokens"]), str(totals["completion_tokens"]),
                  f"{totals['cost']:.4f}", f"{totals['latency_ms']:.0f}", style="bold")
    out.print(table)
