"""Evaluation reports in the viewer: ``concilium serve --reports DIR`` lists what
``concilium eval --out`` wrote, shows a report's summary table and plots, and serves
files only from inside DIR (``..``, absolute paths and symlinks out are refused)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

pytest.register_assert_rewrite("serve_fixtures")
from serve_fixtures import REPO, Server, write_teams  # noqa: E402

pytest_plugins = ["serve_fixtures"]

SECRET = "top-secret-outside-the-reports-dir"


@pytest.fixture(scope="module")
def reported(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory
             ) -> Server:
    """A server whose reports dir holds one real ``concilium eval --out`` output."""
    root = tmp_path_factory.mktemp("reports")
    teams = write_teams(root / "teams", root / "scripts")
    reports = root / "reports"
    env = {**os.environ, "CONCILIUM_SCRIPTS_DIR": str(root / "scripts"),
           "CONCILIUM_HOME": str(root / "home"), "CONCILIUM_REDIS_URL": "",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "eval", str(teams / "single.yaml"), "-d", "arith:4",
         "--out", str(reports / "arith4")],
        env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    (root / "secret.png").write_text(SECRET)
    (root / "secret.md").write_text(SECRET)
    (reports / "arith4" / "leak.png").symlink_to(root / "secret.png")
    (reports / "arith4" / "notes.txt").write_text("not a report file")
    return serve(teams=teams, args=("--reports", str(reports)),
                 env={"CONCILIUM_SCRIPTS_DIR": str(root / "scripts")})


def test_reports_are_listed_with_their_table_and_plots(reported: Server) -> None:
    with reported.client() as client:
        listing = client.get("/ui/reports")
        assert listing.status_code == 200
        assert 'href="/ui/reports/arith4"' in listing.text and "arith" in listing.text
        assert 'href="/ui/reports"' in client.get("/").text
        page = client.get("/ui/reports/arith4")
        assert page.status_code == 200, page.text
        assert '<table id="summary">' in page.text and "<td>arith</td>" in page.text
        assert "%" in page.text  # the accuracy
        for plot in ("accuracy_tokens.png", "latency.png"):
            assert f'src="/ui/report-files/arith4/{plot}"' in page.text
            image = client.get(f"/ui/report-files/arith4/{plot}")
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
            assert image.headers["content-type"] == "image/png"
        report = client.get("/ui/report-files/arith4/report.md")
        assert report.status_code == 200 and report.headers["content-type"].startswith(
            "text/plain")
        assert client.get("/ui/reports/nope").status_code == 404


@pytest.mark.parametrize("path", [
    "/ui/report-files/../secret.md",
    "/ui/report-files/%2e%2e/secret.md",
    "/ui/report-files/arith4/%2e%2e/%2e%2e/secret.md",
    "/ui/report-files/arith4%2f..%2f..%2fsecret.md",
    "/ui/report-files/%2Fetc%2Fpasswd",
    "/ui/report-files//etc/passwd",
    "/ui/report-files/arith4/leak.png",  # a symlink out of the directory
    "/ui/report-files/arith4/notes.txt",  # not a kind of file a report has
    "/ui/report-files/arith4/items.jsonl%00.png",
    "/ui/reports/..%2f..%2f",
])
def test_nothing_outside_the_reports_dir_is_served(reported: Server, path: str) -> None:
    with httpx.Client(base_url=reported.url, timeout=30) as client:
        response = client.get(httpx.URL(reported.url + path))
        assert response.status_code in (400, 404), (path, response.status_code)
        assert SECRET not in response.text and "root:" not in response.text


def test_reports_need_the_key(serve: Callable[..., Server], tmp_path: Path) -> None:
    (tmp_path / "r" / "x").mkdir(parents=True)
    keyed = serve(key="reports-key-0123456789", args=("--reports", str(tmp_path / "r")))
    with httpx.Client(base_url=keyed.url) as client:
        for path in ("/ui/reports", "/ui/report-files/arith4/latency.png"):
            assert client.get(path).status_code == 303  # to the login form
