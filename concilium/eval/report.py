"""The evaluation report: a Markdown or HTML page with tables and two PNG plots.

The report is written from ``summary.json`` plus the item records, so it can be
rebuilt at any time (also from a partial, interrupted run). The plots answer
the two questions people ask first: *what accuracy does each team buy with its
tokens* (one point per team, with its 95 % interval) and *how long does an item
take* (the latency distribution per team). Without matplotlib (the ``eval``
extra) the report keeps its tables and says how to get the plots.

Accuracy is over the items a team completed; items that failed for reasons of
infrastructure have their own column. A team whose ``check: reference``
verifier was shown the answer key (``--reveal-reference``) is marked, since it
was graded by the key. The page passes through
:func:`concilium.secrets.mask_known` like everything else the evaluation writes.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from concilium.secrets import mask_known, secret_values

__all__ = ["ACCURACY_PLOT", "LATENCY_PLOT", "Report", "team_rows", "write_report"]

ACCURACY_PLOT = "accuracy_tokens.png"
LATENCY_PLOT = "latency.png"
REFINING = frozenset({"gvr", "self_refine", "debate", "reflexion"})
"""Strategies that revise answers: their flip counts are shown even when zero."""
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
"""One colour per team, in team order, shared by both plots (matplotlib's tab10)."""

ReportFormat = Literal["md", "html"]


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    path: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- rows


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _seconds(ms: float | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.2f} s"


def flips_shown(team: Mapping[str, Any]) -> bool:
    """Flip counts mean something for strategies that revise (or that did revise)."""
    return team.get("strategy") in REFINING or bool(team.get("revisions"))


TEAM_HEADERS = ("team", "strategy", "accuracy [95% CI]", "n", "calls", "tokens", "cost",
                "p50", "p95", "right→wrong", "wrong→right", "failed")
"""``n`` is completed/selected items; ``failed`` the items the infrastructure failed."""
SAW_KEY = " (saw answer key)"
"""Marks a team whose ``check: reference`` verifier was shown the dataset's answers."""


def failed_count(team: Mapping[str, Any]) -> int:
    """Items that failed for reasons of infrastructure (also from an older summary)."""
    if "failed" in team:
        return int(team["failed"])
    return sum(v for k, v in team.get("status", {}).items() if k in ("failed", "error"))


def team_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per team, in :data:`TEAM_HEADERS` order (the CLI table uses them too)."""
    rows = []
    for team in summary["teams"]:
        ci = team.get("accuracy_ci95")
        accuracy = _pct(team.get("accuracy"))
        if ci:
            accuracy += f" [{100 * ci[0]:.1f}–{100 * ci[1]:.1f}]"
        flips = team.get("flips") or {}
        shown = flips_shown(team)
        failed = failed_count(team)
        completed = team.get("completed", team.get("done", 0) - failed)
        rows.append([
            team["name"] + (SAW_KEY if team.get("saw_reference") else ""),
            team.get("strategy", ""),
            accuracy,
            f"{completed}/{team.get('items', 0)}",
            _num(team.get("mean_llm_calls"), 2),
            _num(team.get("mean_tokens"), 0),
            f"${team.get('total_cost', 0.0):.4f}",
            _seconds(team["latency_ms"]["p50"]),
            _seconds(team["latency_ms"]["p95"]),
            str(flips.get("right->wrong", 0)) if shown else "—",
            str(flips.get("wrong->right", 0)) if shown else "—",
            str(failed),
        ])
    return rows


COMPARISON_HEADERS = ("A", "B", "items", "only A right", "only B right", "p (McNemar)",
                      "difference")


def comparison_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for row in summary.get("comparisons", []):
        verdict = "significant (p < 0.05)" if row["significant"] else "not significant"
        rows.append([row["a"], row["b"], str(row["items"]), str(row["a_only"]),
                     str(row["b_only"]), f"{row['p_value']:.3g} ({row['method']})", verdict])
    return rows


# --------------------------------------------------------------------------- plots


def plot_accuracy_tokens(summary: Mapping[str, Any], path: Path) -> None:
    """Accuracy against mean tokens per item: one point per team, with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        xmax = 1.0
        for index, team in enumerate(summary["teams"]):
            if team.get("accuracy") is None:
                continue
            x, y = team.get("mean_tokens") or 0.0, team["accuracy"]
            xmax = max(xmax, x)
            color = COLORS[index % len(COLORS)]
            ci = team.get("accuracy_ci95") or [y, y]
            ax.errorbar([x], [y], yerr=[[y - ci[0]], [ci[1] - y]], fmt="o", markersize=11,
                        color=color, ecolor=color, elinewidth=1.5, capsize=5, label=team["name"])
            # Staggered heights: teams with equal accuracy and close token counts (all
            # at 0 on a hard dataset) would otherwise print their names over each other.
            ax.annotate(team["name"], (x, y), textcoords="offset points",
                        xytext=(8, 8 + 13 * (index % 3)), fontsize=9)
        ax.set_xlabel("mean tokens per item")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlim(0, xmax * 1.35)  # room for the labels right of the points
        ax.grid(alpha=0.3)
        ax.set_title(f"Accuracy vs tokens — {summary['dataset']['name']}")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def plot_latency(
    summary: Mapping[str, Any], records: Mapping[str, Sequence[Mapping[str, Any]]], path: Path
) -> None:
    """Per-item latency of each team: a box plot with every item drawn as a point."""
    import random

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [t["name"] for t in summary["teams"]]
    data = [[float(r.get("wall_ms", 0.0)) / 1000 for r in records.get(n, [])] for n in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(names) + 2), 4.5), dpi=110)
    try:
        ax.boxplot([d or [0.0] for d in data], showfliers=False, widths=0.5,
                   medianprops={"color": "black"})
        jitter = random.Random(0)
        for index, values in enumerate(data):
            xs = [index + 1 + jitter.uniform(-0.12, 0.12) for _ in values]
            ax.scatter(xs, values, s=26, color=COLORS[index % len(COLORS)], edgecolors="white",
                       linewidths=0.5, zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=15)
        ax.set_ylabel("seconds per item")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title("Latency per item")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- pages


def _blocks(summary: Mapping[str, Any], images: Sequence[Path], notes: Sequence[str]) -> list:
    dataset = summary["dataset"]
    options = summary.get("options", {})
    when = dt.datetime.fromtimestamp(summary.get("finished_at") or summary.get("started_at")
                                     or 0, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    intro = (f"{dataset['items']} items of `{dataset['spec']}` · {when} · concurrency "
             f"{options.get('concurrency')} · memory {options.get('memory', 'off')}")
    blocks: list[tuple[Any, ...]] = [("h1", f"concilium eval — {dataset['name']}"), ("p", intro)]
    if not summary.get("complete", True):
        blocks.append(("p", "**Partial results**: the run was interrupted or some items are "
                            "missing; rerun the same command to finish it."))
    blocks += [("h2", "Teams"), ("table", TEAM_HEADERS, team_rows(summary))]
    blocks.append(("p", "n is the items each team completed; calls and tokens are means per "
                        "item, cost is the total, p50/p95 are per-item latency. Accuracy is "
                        "over the completed items (a timed-out or budget-stopped item counts "
                        "as wrong); items the infrastructure failed (a model that kept "
                        "failing after retries and re-queues, a crashed run) are in `failed`, "
                        "not counted as wrong. Its interval is Wilson's 95 %. Flips (answers "
                        "a revision turned right→wrong or wrong→right) are judged against the "
                        "first accepted answer."))
    comparisons = comparison_rows(summary)
    if comparisons:
        blocks += [("h2", "Paired comparisons"), ("table", COMPARISON_HEADERS, comparisons),
                   ("p", "McNemar's test on the items both teams completed (exact binomial "
                         "below 25 discordant items): a small p means the difference in "
                         "accuracy is unlikely to be chance.")]
    titles = {ACCURACY_PLOT: "Accuracy against tokens", LATENCY_PLOT: "Latency"}
    for image in images:
        blocks += [("h2", titles.get(image.name, image.stem)), ("img", image.name, image.stem)]
    if notes:
        blocks += [("h2", "Notes"), ("ul", list(notes))]
    return blocks


def _markdown(blocks: Sequence[tuple[Any, ...]]) -> str:
    lines: list[str] = []
    for kind, *rest in blocks:
        if kind == "h1":
            lines += [f"# {rest[0]}", ""]
        elif kind == "h2":
            lines += [f"## {rest[0]}", ""]
        elif kind == "p":
            lines += [rest[0], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in rest[0]] + [""]
        elif kind == "img":
            lines += [f"![{rest[1]}]({rest[0]})", ""]
        elif kind == "table":
            headers, rows = rest
            cell = _md_cell
            lines.append("| " + " | ".join(cell(h) for h in headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline_html(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("`")
    escaped = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = escaped.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _html(blocks: Sequence[tuple[Any, ...]]) -> str:
    body: list[str] = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{_inline_html(rest[0])}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in rest[0]) + "</ul>")
        elif kind == "img":
            body.append(f'<img src="{html.escape(rest[0])}" alt="{html.escape(rest[1])}">')
        elif kind == "table":
            headers, rows = rest
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            cells = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
             "text-align:left}img{max-width:100%}")
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>concilium eval</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(
    summary: Mapping[str, Any],
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    out_dir: Path,
    fmt: ReportFormat = "md",
) -> Report:
    """Write the plots and ``report.md`` (or ``report.html``) into ``out_dir``.

    Args:
        summary: what :meth:`Evaluation.summary` returns (or ``summary.json``).
        records: team name -> its item records (for the latency distribution).
        out_dir: the evaluation's output directory.
        fmt: ``md`` or ``html``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    images: list[Path] = []
    notes: list[str] = []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        notes.append("Plots need matplotlib: pip install 'concilium[eval]', then rerun the "
                     "same command (finished items are not run again).")
    else:
        if any(t.get("done") for t in summary["teams"]):
            plot_accuracy_tokens(summary, out_dir / ACCURACY_PLOT)
            plot_latency(summary, records, out_dir / LATENCY_PLOT)
            images = [out_dir / ACCURACY_PLOT, out_dir / LATENCY_PLOT]
    for team in summary["teams"]:
        failed = {k: v for k, v in team.get("status", {}).items() if k not in ("ok", "stopped")}
        if failed:
            listed = ", ".join(f"{v} {k}" for k, v in sorted(failed.items()))
            notes.append(f"{team['name']}: {listed}; rerun the same command to retry failed "
                         "and errored items (see their `error` in items.jsonl).")
        if team.get("saw_reference"):
            notes.append(f"{team['name']}{SAW_KEY}: its `check: reference` verifier was shown "
                         "the dataset's answers (--reveal-reference), so it was graded by the "
                         "key; its accuracy is not comparable with the other teams'.")
        elif team.get("checks_reference"):
            notes.append(f"{team['name']}: its `check: reference` verifier ran without the "
                         "answer key (it accepts every answer); pass --reveal-reference to "
                         "show it the dataset's answers.")
    blocks = _blocks(summary, images, notes)
    path = out_dir / ("report.html" if fmt == "html" else "report.md")
    page = _html(blocks) if fmt == "html" else _markdown(blocks)
    secrets = secret_values()
    secrets += [html.escape(s) for s in secrets if html.escape(s) != s]  # as the page has it
    path.write_text(mask_known(page, secrets), encoding="utf-8")
    return Report(path=path, images=images, notes=notes)
