"""The web run viewer of ``concilium serve``: login, pages, and a real headless Chromium
that starts a run from the page and sees its steps appear before the run ends."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

pytest.register_assert_rewrite("serve_fixtures")
from serve_fixtures import TASK, Server  # noqa: E402

pytest_plugins = ["serve_fixtures"]

KEY = "viewer-key-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = os.environ.get("CONCILIUM_VIEWER_SCREENSHOT")
"""Also save the screenshot here (for the README)."""


@pytest.fixture(scope="module")
def keyed(serve: Callable[..., Server]) -> Server:
    return serve(key=KEY)


def test_pages_need_a_login_that_sets_a_safe_cookie(keyed: Server) -> None:
    with httpx.Client(base_url=keyed.url) as browser:
        assert browser.get("/").status_code == 303
        assert browser.get("/").headers["location"] == "/login"
        assert browser.get("/login").status_code == 200
        wrong = browser.post("/login", data={"key": "nope"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        right = browser.post("/login", data={"key": KEY})
        assert right.status_code == 303
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
        page = browser.get("/")  # the cookie is kept by the client
        assert page.status_code == 200 and "Start a run" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert KEY not in page.text
        assert browser.get("/runs").status_code == 200  # the API takes the cookie too
        assert browser.get("/ui/teams/gvr-scripted").status_code == 200
        team_page = browser.get("/ui/teams/gvr-scripted").text
        assert "flowchart" in team_page and "<svg" in team_page
        assert team_page.count('<g class="node"') == 5
        assert browser.get("/ui/runs/nope").status_code == 404
        browser.post("/logout")
        assert browser.get("/").status_code == 303


def test_html_is_escaped(keyed: Server) -> None:
    with keyed.client() as client:
        run_id = client.post("/runs", json={"team": "arith",
                                            "task": "<script>alert(1)</script> 2+2"}
                             ).json()["run_id"]
        keyed.wait_run(run_id)
        for path in ("/", f"/ui/runs/{run_id}"):
            text = client.get(path).text
            assert "<script>alert(1)</script>" not in text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_browser_starts_a_run_and_sees_steps_live(keyed: Server, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{keyed.url}/")
            assert page.url.endswith("/login")
            page.fill("input[name=key]", KEY)
            page.click("button[type=submit]")
            page.wait_for_selector("#start", timeout=30_000)
            page.select_option("#team", "gvr-scripted")
            page.fill("#task", TASK)
            page.fill("#reference", "411")
            page.click("#start button[type=submit]")
            page.wait_for_url("**/ui/runs/*", timeout=30_000)
            page.wait_for_selector(".card.step", timeout=30_000)
            first_seen = page.locator(".card.step").count()
            status_then = page.text_content("#status")
            assert status_then == "running" and first_seen < 8  # live, not after the end
            page.wait_for_selector("#status:not(.status-running)", timeout=60_000)
            assert page.text_content("#status") == "ok"
            assert page.locator(".card.step").count() == 8
            assert page.locator("#grid tbody tr").count() == 4  # rounds 0..3
            assert page.locator(".badge.rejected").count() == 4  # every verdict
            # the team's graph, drawn by the server: one box per node, loops dashed
            assert page.locator("#graph svg g.node").count() == 5  # start, 3 roles, end
            assert page.locator("#graph svg path.edge.conditional").count() == 2
            assert "generator" in page.text_content("#graph svg")
            page.locator("#graph svg").screenshot(path=str(tmp_path / "graph.png"))
            shot = tmp_path / "viewer.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if SCREENSHOT:
                shutil.copy(shot, SCREENSHOT)
            # the runs list shows it, with its numbers
            page.goto(f"{keyed.url}/")
            deadline = time.monotonic() + 10
            while "gvr-scripted" not in (page.text_content("#runs") or ""):
                assert time.monotonic() < deadline
                page.wait_for_timeout(100)
        finally:
            browser.close()
