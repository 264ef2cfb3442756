"""A real ``concilium serve`` process on a free 127.0.0.1 port, with scripted teams.

Import what a test module uses: ``from serve_fixtures import Server, serve, teams_dir``.
Every server is a subprocess of the real CLI (no app-in-process shortcut), so the
tests exercise uvicorn, the middleware and the wire format exactly as clients see them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from waiting import DEADLINE_S, wait_for

REPO = Path(__file__).resolve().parent.parent
TASK = "What is 17 * 24 + 3?"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
WRONG = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"

TEAMS: dict[str, dict[str, Any]] = {
    "single": {"name": "arith", "description": "One scripted call.", "strategy": "single",
               "model": "scripted/quick", "roles": {"generator": {}}},
    "gvr": {"name": "gvr-scripted", "description": "Generator, LLM verifier, refiner.",
            "strategy": "gvr", "model": "scripted/slow",
            "limits": {"max_rounds": 3, "max_llm_calls": 20},
            "roles": {"generator": {}, "verifier": {"check": "llm"}, "refiner": {}}},
    "debate": {"name": "debate-scripted", "description": "Two debaters, two rounds.",
               "strategy": {"name": "debate", "rounds": 2, "debaters": 2,
                            "final": "majority"},
               "model": "scripted/quick", "limits": {"max_llm_calls": 10},
               "roles": {"debater": {"temperature": 0.7}}},
}

SCRIPTS = {
    "quick": {"default": RIGHT},
    # A verifier that never accepts: gvr runs all its rounds, one slow call at a time.
    "slow": {"latency_s": 0.3, "rules": [{"role": "verifier",
                                          "reply": "VERDICT: incorrect, check 17 * 24"}],
             "default": WRONG},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    home: Path
    key: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=60, **kwargs)

    def wait_run(self, run_id: str, timeout_s: float = DEADLINE_S) -> dict[str, Any]:
        """The run once it is no longer running (polled with a deadline)."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while time.monotonic() < deadline:
                run = client.get(f"/runs/{run_id}").json()
                if run.get("status") not in ("running", None) and not run.get("live"):
                    return dict(run)
                time.sleep(0.05)
        raise AssertionError(f"run {run_id} still running after {timeout_s} s")


def write_teams(where: Path, scripts: Path, teams: dict[str, dict[str, Any]] | None = None,
                script_overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    scripts.mkdir(parents=True, exist_ok=True)
    for stem, team in (teams or TEAMS).items():
        (where / f"{stem}.yaml").write_text(json.dumps(team))
    for name, script in {**SCRIPTS, **(script_overrides or {})}.items():
        (scripts / f"{name}.yaml").write_text(json.dumps(script))
    return where


def start_server(tmp_path: Path, *, key: str | None = None, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, teams: Path | None = None,
                 name: str = "server", home: Path | None = None) -> Server:
    root = tmp_path / name
    scripts = tmp_path / "scripts"
    if teams is None:
        teams = write_teams(tmp_path / "teams", scripts)
    port = free_port()
    full_env = {**os.environ, "CONCILIUM_HOME": str(home or root / "home"),
                "CONCILIUM_SCRIPTS_DIR": str(scripts), "CONCILIUM_REDIS_URL": "",
                "CONCILIUM_MODEL": "scripted/quick", **(env or {})}
    full_env.pop("CONCILIUM_API_KEY", None)
    # The server runs the same concilium as the tests, wherever the shell's path points.
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    if key is not None:
        full_env["CONCILIUM_API_KEY"] = key
    if not full_env.get("CONCILIUM_DATABASE_URL"):
        full_env.pop("CONCILIUM_DATABASE_URL", None)
    code = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--teams", str(teams), "--port", str(port),
         *args], env=full_env, text=True, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    server = Server(f"http://127.0.0.1:{port}", process, root, key)
    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {(root / 'server.log').read_text()}")
        try:
            return httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        # A deadline, not a guess: a loaded 2-core machine took over 60 s to import and bind.
        wait_for(healthy, what=f"the server's /health on port {port}")
    except AssertionError as error:
        process.kill()
        said = (root / "server.log").read_text()
        raise AssertionError(f"server did not start: {said}") from error
    return server


def stop_server(server: Server) -> str:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)
    return (server.home / "server.log").read_text()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """``serve(key=..., args=..., env=...)`` starts a server; all are stopped when the
    module's tests are done (a server takes seconds to start on a busy machine: tests of
    one module share them)."""
    started: list[Server] = []
    tmp_path = tmp_path_factory.mktemp("serve")

    def start(**kwargs: Any) -> Server:
        kwargs.setdefault("name", f"server{len(started)}")
        server = start_server(tmp_path, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture(scope="module")
def server(serve: Callable[..., Server]) -> Server:
    """One server without a key, on loopback."""
    return serve()
