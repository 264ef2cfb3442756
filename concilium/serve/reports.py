"""Evaluation reports in the viewer: what ``concilium eval --out DIR`` wrote, read-only.

``concilium serve --reports DIR`` (default ``reports/``, where ``concilium eval`` writes,
when it exists) makes every directory under it that holds a ``summary.json`` a report:

- ``/ui/reports``: the reports, newest first (dataset, teams, complete or not);
- ``/ui/reports/{name}``: the summary table (accuracy with its 95% interval, failed,
  calls, tokens, cost, latency, flips) and the plots;
- ``/ui/report-files/{name}/{file}``: a plot or the report itself.

Files are served only from inside the reports directory: the path is resolved
(``..`` and symlinks followed) and refused unless it stays under it, and only the
kinds a report holds (PNG, Markdown and JSON as text, the HTML report sandboxed).
Everything is read in a worker thread: a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from concilium.serve.viewer import BASE, _env, _login_redirect, _page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SUMMARY = "summary.json"
MAX_DEPTH = 3
TYPES = {".png": "image/png", ".md": "text/plain; charset=utf-8",
         ".json": "application/json", ".jsonl": "text/plain; charset=utf-8",
         ".html": "text/html; charset=utf-8"}
REPORT_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
"""The HTML report runs no script and reaches nothing but its own plots."""


@dataclass(frozen=True)
class Report:
    name: str
    """Its path under the reports directory, with ``/``."""
    summary: dict[str, Any]
    files: list[str]
    mtime: float


def _reports(root: Path) -> list[Report]:
    found: list[Report] = []
    base = root.resolve()
    for summary in sorted(base.rglob(SUMMARY)):
        where = summary.parent
        if len(where.relative_to(base).parts) > MAX_DEPTH or not _inside(base, summary):
            continue
        report = _read(base, where)
        if report is not None:
            found.append(report)
    return sorted(found, key=lambda r: r.mtime, reverse=True)


def _read(base: Path, where: Path) -> Report | None:
    try:
        summary = json.loads((where / SUMMARY).read_text(encoding="utf-8"))
        mtime = (where / SUMMARY).stat().st_mtime
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or not isinstance(summary.get("teams"), list):
        return None
    files = sorted(p.name for p in where.iterdir()
                   if p.is_file() and p.suffix in TYPES and _inside(base, p))
    name = where.relative_to(base).as_posix()
    return Report(name=name if name != "." else "", summary=summary, files=files, mtime=mtime)


def _inside(base: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(base)
    except OSError:
        return False


def _root(request: Request) -> Path | None:
    root: Path | None = request.app.state.reports
    return root if root is not None and root.is_dir() else None


def _safe(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file inside ``root``; ``None`` for anything else."""
    if "\x00" in relative or relative.startswith(("/", "\\")):
        return None
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


LIST = _env.from_string(BASE.replace("{% block main %}{% endblock %}", """
{% if not configured %}<p>No reports directory: start the server with
<code>--reports DIR</code> (the <code>--out</code> of <code>concilium eval</code>).</p>
{% elif not reports %}<p>No evaluation report in {{ root }} yet: run
<code>concilium eval TEAMS... --dataset ... --out {{ root }}/NAME</code>.</p>{% endif %}
<table id="reports"><thead><tr><th>report</th><th>dataset</th><th>items</th><th>teams</th>
<th>complete</th></tr></thead><tbody>{% for r in reports %}<tr>
<td><a href="/ui/reports/{{ r.name }}">{{ r.name or "(top)" }}</a></td>
<td>{{ r.summary.get("dataset", {}).get("name", "") }}</td>
<td>{{ r.summary.get("dataset", {}).get("items", "") }}</td>
<td>{{ r.summary.teams|map(attribute="name")|join(", ") }}</td>
<td>{{ "yes" if r.summary.get("complete") else "no" }}</td></tr>{% endfor %}</tbody></table>
<script type="application/json" id="page">{{ page|tojson }}</script>
"""))

ONE = _env.from_string(BASE.replace("{% block main %}{% endblock %}", """
<p>Dataset <b>{{ summary.get("dataset", {}).get("name", "") }}</b>
({{ summary.get("dataset", {}).get("items", "?") }} items){% if not summary.get("complete") %}
· <span class="error">incomplete</span>{% endif %} · <a href="/ui/reports">all reports</a></p>
<table id="summary"><thead><tr><th>team</th><th>strategy</th><th>model</th><th>accuracy</th>
<th>95% CI</th><th>done</th><th>failed</th><th>calls/item</th><th>tokens/item</th>
<th>cost $</th><th>p50 ms</th><th>p95 ms</th><th>flips r→w / w→r</th></tr></thead><tbody>
{% for t in summary.teams %}<tr><td>{{ t.get("name") }}</td><td>{{ t.get("strategy", "") }}</td>
<td>{{ t.get("model", "") }}</td><td>{{ pct(t.get("accuracy")) }}</td>
<td>{{ ci(t.get("accuracy_ci95")) }}</td><td>{{ t.get("done", "") }}/{{ t.get("items", "") }}</td>
<td>{{ t.get("failed", "") }}</td><td>{{ num(t.get("mean_llm_calls")) }}</td>
<td>{{ num(t.get("mean_tokens")) }}</td><td>{{ num(t.get("total_cost"), 4) }}</td>
<td>{{ num(t.get("latency_ms", {}).get("p50"), 0) }}</td>
<td>{{ num(t.get("latency_ms", {}).get("p95"), 0) }}</td>
<td>{{ t.get("flips", {}).get("right->wrong", "") }} /
 {{ t.get("flips", {}).get("wrong->right", "") }}</td>
</tr>{% endfor %}</tbody></table>
{% for f in images %}<figure class="plot"><img src="/ui/report-files/{{ prefix }}{{ f }}"
 alt="{{ f }}"><figcaption>{{ f }}</figcaption></figure>{% endfor %}
<p>Files: {% for f in files %}<a href="/ui/report-files/{{ prefix }}{{ f }}">{{ f }}</a>
{% endfor %}</p>
<script type="application/json" id="page">{{ page|tojson }}</script>
"""))


def _pct(value: Any) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else ""


def _ci(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int | float) for v in value):
        return f"{value[0] * 100:.0f}–{value[1] * 100:.0f}%"
    return ""


def _num(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else ""


@router.get("/ui/reports")
async def reports_page(request: Request) -> Response:
    if (redirect := _login_redirect(request)) is not None:
        return redirect
    root = _root(request)
    found = await asyncio.to_thread(_reports, root) if root is not None else []
    return _page(LIST, title="evaluation reports", reports=found, configured=root is not None,
                 root=str(request.app.state.reports or ""), page={"view": "reports"})


@router.get("/ui/reports/{name:path}")
async def report_page(request: Request, name: str) -> Response:
    if (redirect := _login_redirect(request)) is not None:
        return redirect
    root = _root(request)
    where = await asyncio.to_thread(_safe, root, f"{name}/{SUMMARY}") if root else None
    report = await asyncio.to_thread(_read, root.resolve(), where.parent) if (
        root is not None and where is not None) else None
    if report is None:
        from concilium.serve.viewer import _NOT_FOUND

        return _page(_NOT_FOUND, status=404, title="not found",
                     message=f"no evaluation report {name!r}", page={"view": "none"})
    prefix = f"{report.name}/" if report.name else ""
    return _page(ONE, title=f"report {report.name}", summary=report.summary,
                 files=report.files, images=[f for f in report.files if f.endswith(".png")],
                 prefix=prefix, pct=_pct, ci=_ci, num=_num, page={"view": "report"})


@router.get("/ui/report-files/{path:path}")
async def report_file(request: Request, path: str) -> Response:
    if (redirect := _login_redirect(request)) is not None:
        return redirect
    root = _root(request)
    found = await asyncio.to_thread(_safe, root, path) if root is not None else None
    kind = TYPES.get(found.suffix) if found is not None else None
    if found is None or kind is None:
        return Response("not found\n", status_code=404, media_type="text/plain")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
               "Content-Security-Policy": REPORT_CSP}
    return FileResponse(found, media_type=kind, headers=headers)
