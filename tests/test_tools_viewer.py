"""A role's tool calls in the web viewer: a real ``concilium serve`` process and Chromium.

The team's generator has the calculator; the scripted model asks for it through the
prompt protocol, then answers. The run page must show the turn that asked, and the
call as its own card with its input and result.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.register_assert_rewrite("serve_fixtures")
from serve_fixtures import TASK, start_server, stop_server, write_teams  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "17 * 24 + 3"}}'
TEAM = {
    "name": "tooled",
    "strategy": "single",
    "model": "scripted/tooled",
    "roles": {"generator": {"tools": ["calculator"]}},
}


def test_the_viewer_shows_each_tool_call(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    scripts = tmp_path / "scripts"
    teams = write_teams(
        tmp_path / "teams",
        scripts,
        teams={"tooled": TEAM},
        script_overrides={"tooled": {"replies": {"generator": [CALL, "Answer: 411"]}}},
    )
    server = start_server(tmp_path, teams=teams)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            started = client.post("/runs", json={"team": "tooled", "task": TASK})
            assert started.status_code in (200, 201, 202), started.text
            run_id = started.json()["run_id"]
        run = server.wait_run(run_id, timeout_s=120)
        assert run["status"] == "ok", json.dumps(run)[:500]
        # On a thread of its own: Playwright's sync API refuses a thread with an event
        # loop, and an async test earlier in the session may have left one set here.
        with ThreadPoolExecutor(1) as browser_thread:
            browser_thread.submit(_check_page, sync_api, server.url, run_id).result()
    finally:
        stop_server(server)


def _check_page(sync_api: Any, url: str, run_id: str) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            page.goto(f"{url}/ui/runs/{run_id}")
            page.wait_for_selector("#status:not(.status-running)", timeout=60_000)
            # turn, tool call, answer (cards are drawn as the events arrive)
            page.wait_for_function(
                "document.querySelectorAll('.card.step').length >= 3", timeout=60_000
            )
            assert page.locator(".card.step").count() == 3
            tool = page.locator(".card.step.tool")
            assert tool.count() == 1
            text = tool.text_content() or ""
            assert 'input: calculator({"expression": "17 * 24 + 3"})' in text
            assert "result: 411" in text and "calculator" in text
            assert "asks calculator" in (page.text_content("#grid") or "")
            assert page.text_content("#answer") == "411"
        finally:
            browser.close()
