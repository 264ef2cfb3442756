"""The web run viewer: server-rendered pages plus one small script, no build step.

- ``/``: the runs (team, status, answer, calls, tokens, cost, wall time; refreshed
  while any runs), a form to start a run, the teams;
- ``/ui/runs/{id}``: the run's steps as rounds x role instances (debaters side by
  side per round, verdicts, critiques, flips right->wrong / wrong->right, tool calls
  with input and result), filled live from ``/runs/{id}/events`` (SSE), and the
  team's graph (an SVG drawn by the server, :mod:`concilium.serve.graph_svg`:
  nothing is loaded from a CDN; its Mermaid source below it);
- ``/login``: with an API key set, a form that sets an HttpOnly, SameSite=Strict
  session cookie derived from the key (never the key itself), so the browser can
  use the API the pages call.

Pages send a strict Content-Security-Policy: scripts only from this server, data
for them in ``application/json`` blocks, every value HTML-escaped by Jinja2.
"""

from __future__ import annotations

import asyncio
import hmac
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from concilium.secrets import redact
from concilium.serve.graph_svg import graph_svg
from concilium.serve.http import SESSION_COOKIE, authorized, session_token

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")

_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · concilium</title>
<link rel="stylesheet" href="/ui/viewer.css"></head>
<body><header><a href="/">concilium</a><span>{{ title }}</span></header>
<main>{% block main %}{% endblock %}</main>
<script src="/ui/viewer.js"></script></body></html>"""

INDEX = _env.from_string(BASE.replace("{% block main %}{% endblock %}", """
<h2>Start a run</h2>
<form class="start" id="start">
 <label>Team <select name="team" id="team">{% for t in teams %}
  <option value="{{ t.name }}">{{ t.name }} ({{ t.strategy }})</option>{% endfor %}</select></label>
 <label>Task <textarea name="task" id="task" required maxlength="100000"></textarea></label>
 <label>Reference answer (optional) <input name="reference" id="reference"></label>
 <button type="submit">Run</button> <span id="start-error" class="error"></span>
</form>
<h2>Runs</h2>
<table id="runs"><thead><tr><th>run</th><th>team</th><th>status</th><th>answer</th>
<th>calls</th><th>tokens</th><th>cost $</th><th>wall s</th><th>task</th></tr></thead>
<tbody>{% for r in runs %}<tr>
<td><a href="/ui/runs/{{ r.id }}">{{ r.id }}</a></td><td>{{ r.team }}</td>
<td class="status-{{ r.status }}">{{ r.status }}</td><td>{{ r.answer or "" }}</td>
<td>{{ r.llm_calls }}</td><td>{{ r.prompt_tokens + r.completion_tokens }}</td>
<td>{{ "%.4f"|format(r.cost) }}</td><td>{{ "%.1f"|format(r.wall_ms / 1000) }}</td>
<td>{{ r.task[:80] }}</td></tr>{% endfor %}</tbody></table>
<p><a href="/ui/reports" id="reports-link">Evaluation reports</a></p>
<h2>Teams</h2><ul>{% for t in teams %}<li><a href="/ui/teams/{{ t.name }}">{{ t.name }}</a>
({{ t.strategy }}) {{ t.description }}</li>{% endfor %}</ul>
<script type="application/json" id="page">{{ page|tojson }}</script>
"""))

RUN = _env.from_string(BASE.replace("{% block main %}{% endblock %}", """
<p><b>{{ run.team }}</b> · <span id="status" class="status-{{ run.status }}">{{ run.status }}</span>
· answer <b id="answer">{{ run.answer or "" }}</b> · <span id="totals"></span></p>
<p>Task: {{ run.task }}</p>
<table id="grid"><thead><tr><th>round</th></tr></thead><tbody></tbody></table>
<p id="end"></p>
<h3>Team graph</h3><figure class="graph" id="graph">{{ svg|safe }}</figure>
<details><summary>Mermaid source</summary><pre class="graph">{{ mermaid }}</pre></details>
<script type="application/json" id="page">{{ page|tojson }}</script>
"""))

TEAM = _env.from_string(BASE.replace("{% block main %}{% endblock %}", """
<p>{{ team.description }} (strategy <b>{{ team.strategy }}</b>, file {{ file }})</p>
<h3>Graph</h3><figure class="graph" id="graph">{{ svg|safe }}</figure>
<details><summary>Mermaid source</summary><pre class="graph">{{ mermaid }}</pre></details>
<h3>Spec</h3><pre class="graph">{{ spec }}</pre>
<script type="application/json" id="page">{{ page|tojson }}</script>
"""))

LOGIN = _env.from_string(BASE.replace("{% block main %}{% endblock %}", """
<form class="start" method="post" action="/login">
 <label>API key <input type="password" name="key" autocomplete="current-password" autofocus></label>
 <button type="submit">Sign in</button>
 {% if error %}<span class="error">{{ error }}</span>{% endif %}
</form>
<script type="application/json" id="page">{{ page|tojson }}</script>
"""))

SCRIPT = (files("concilium.serve") / "static" / "viewer.js").read_text(encoding="utf-8")
CSS = (files("concilium.serve") / "static" / "viewer.css").read_text(encoding="utf-8")


def _page(template: jinja2.Template, status: int = 200, **context: Any) -> HTMLResponse:
    html = template.render(**context)
    return HTMLResponse(html, status_code=status, headers={
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def _drawn(team: Any) -> tuple[Markup, str]:
    """The team's graph as inline SVG (drawn here: no CDN, no JS renderer) and as Mermaid
    source. The SVG escapes every label itself (:mod:`concilium.serve.graph_svg`)."""
    graph = team.compile().get_graph()
    return Markup(graph_svg(graph)), str(graph.draw_mermaid())


def _login_redirect(request: Request) -> Response | None:
    if authorized(request):
        return None
    return RedirectResponse("/login", status_code=303)


@router.get("/ui/viewer.js")
async def script() -> Response:
    return Response(SCRIPT, media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/ui/viewer.css")
async def style() -> Response:
    return Response(CSS, media_type="text/css",
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> Response:
    from concilium.serve.api import list_runs, teams

    if (redirect := _login_redirect(request)) is not None:
        return redirect
    runs = await list_runs(request, team=None, status=None, limit=50)
    return _page(INDEX, title="runs", runs=runs, teams=await teams(request),
                 page={"view": "index"})


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> Response:
    from concilium.serve.api import get_run
    from concilium.serve.http import ApiError

    if (redirect := _login_redirect(request)) is not None:
        return redirect
    try:
        run = await get_run(request, run_id)
    except ApiError as error:
        return _page(_NOT_FOUND, status=error.status,
                     title="not found", message=error.message, page={"view": "none"})
    entry = request.app.state.registry.entry(run.team)
    svg, mermaid = await asyncio.to_thread(_drawn, entry.team) if entry else (Markup(""), "")
    return _page(RUN, title=f"run {run.id}", run=run, svg=svg, mermaid=mermaid,
                 page={"view": "run", "run_id": run.id})


@router.get("/ui/teams/{name}", response_class=HTMLResponse)
async def team_page(request: Request, name: str) -> Response:
    import yaml

    if (redirect := _login_redirect(request)) is not None:
        return redirect
    entry = request.app.state.registry.entry(name)
    if entry is None:
        return _page(_NOT_FOUND, status=404, title="not found", message=f"no team {name!r}",
                     page={"view": "none"})
    team = entry.team
    spec = redact(yaml.safe_dump(team.spec.model_dump(mode="json", exclude_unset=True),
                                 sort_keys=False))
    svg, mermaid = await asyncio.to_thread(_drawn, team)
    return _page(TEAM, title=f"team {team.name}", team=team.spec, file=entry.path.name,
                 svg=svg, mermaid=mermaid, spec=spec,
                 page={"view": "team"})


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _page(LOGIN, title="sign in", error=None, page={"view": "login"})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    key: str | None = request.app.state.api_key
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (form.get("key") or [""])[0]
    if key is None:
        return RedirectResponse("/", status_code=303)
    if not hmac.compare_digest(given.encode(), key.encode()):
        return _page(LOGIN, status=401, title="sign in", error="wrong key",
                     page={"view": "login"})
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, session_token(key), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


_NOT_FOUND = _env.from_string(BASE.replace("{% block main %}{% endblock %}", """
<p class="error">{{ message }}</p><p><a href="/">all runs</a></p>
<script type="application/json" id="page">{{ page|tojson }}</script>
"""))
