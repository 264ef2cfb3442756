"""The runs API of ``concilium serve``: start, list, read, follow (SSE), cancel, resume,
teams; across two server processes sharing one ledger; fuzzed by schemathesis."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.register_assert_rewrite("serve_fixtures")
from serve_fixtures import TASK, Server, start_server, stop_server  # noqa: E402

pytest_plugins = ["serve_fixtures"]

GVR_STEPS = ["generator"] + ["verifier", "refiner"] * 3 + ["verifier"]


def events(client: httpx.Client, run_id: str) -> Iterator[dict[str, Any]]:
    """A run's SSE events, parsed, as they arrive."""
    with client.stream("GET", f"/runs/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def test_start_returns_at_once_and_events_arrive_live(server: Server) -> None:
    with server.client() as client:
        began = time.monotonic()
        started = client.post("/runs", json={"team": "gvr-scripted", "task": TASK,
                                              "reference": "411"})
        assert started.status_code == 202
        run_id = started.json()["run_id"]
        assert started.json()["events"] == f"/runs/{run_id}/events"
        assert time.monotonic() - began < 2.4  # 8 calls of 0.3 s: it has not waited
        listed = client.get("/runs", params={"status": "running"}).json()
        assert run_id in [r["id"] for r in listed]
        seen: list[tuple[str, float]] = []
        for event in events(client, run_id):
            seen.append((event["type"], time.monotonic()))
            if event["type"] == "step":
                assert "messages" in event["step"]
        kinds = [k for k, _ in seen]
        assert kinds == ["run_start"] + ["step"] * 8 + ["run_end"]
        # live: the steps came one by one (0.3 s model calls), not all at the end
        assert seen[-2][1] - seen[1][1] > 1.0
        run = client.get(f"/runs/{run_id}").json()
        assert run["status"] == "ok" and run["answer"] == "403" and run["correct"] is False
        assert [s["role"] for s in run["steps"]] == GVR_STEPS
        assert run["llm_calls"] == 8 and run["prompt_tokens"] > 0
        # a finished run's events replay whole
        assert [e["type"] for e in events(client, run_id)][-1] == "run_end"
        assert client.get("/runs", params={"team": "arith"}).json() == [] or all(
            r["team"] == "arith" for r in client.get("/runs", params={"team": "arith"}).json())


def test_cancel_then_resume_finishes_without_repeating_calls(server: Server) -> None:
    with server.client() as client:
        run_id = client.post("/runs", json={"team": "gvr-scripted", "task": TASK,
                                            "run_id": "cancel-me"}).json()["run_id"]
        assert run_id == "cancel-me"
        for event in events(client, run_id):
            if event["type"] == "step" and event["seq"] == 3:
                break
        cancelled = client.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        done = [e for e in events(client, run_id)]
        assert done[-1] == {"type": "run_end", "status": "cancelled",
                            "error": "cancelled by a client"}
        before = len(client.get(f"/runs/{run_id}").json()["steps"])
        assert 3 <= before < 8
        assert client.post(f"/runs/{run_id}/cancel").status_code == 200  # idempotent
        resumed = client.post(f"/runs/{run_id}/resume", json={})
        assert resumed.status_code == 202, resumed.text
        run = server.wait_run(run_id)
        assert run["status"] == "ok", run
        assert [s["role"] for s in run["steps"]] == GVR_STEPS  # each call once
        again = client.post(f"/runs/{run_id}/resume")
        assert again.status_code == 409 and "already finished" in again.json()["error"]["message"]


def test_errors(server: Server) -> None:
    with server.client() as client:
        for path in ("/runs/nope", "/runs/nope/events", "/teams/nope"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["type"] == "not_found_error"
        for path in ("/runs/nope/cancel", "/runs/nope/resume"):
            assert client.post(path).status_code == 404
        assert client.post("/runs", json={"team": "nope", "task": "x"}).status_code == 404
        for bad in ({"team": "arith"}, {"team": "arith", "task": ""},
                    {"team": "arith", "task": "x", "limits": {"max_llm_calls": 999}},
                    {"team": "arith", "task": "x", "run_id": "../etc"}):
            response = client.post("/runs", json=bad)
            assert response.status_code == 400, bad  # the task cannot pick a limit
        run_id = client.post("/runs", json={"team": "arith", "task": TASK}).json()["run_id"]
        server.wait_run(run_id)
        taken = client.post("/runs", json={"team": "arith", "task": TASK, "run_id": run_id})
        assert taken.status_code == 409
        assert client.get("/runs", params={"limit": 0}).status_code == 400
        assert client.get("/runs", params={"status": "weird"}).status_code == 400


def test_teams_give_spec_and_graph(server: Server) -> None:
    with server.client() as client:
        names = [t["name"] for t in client.get("/teams").json()]
        assert names == ["arith", "debate-scripted", "gvr-scripted"]
        team = client.get("/teams/gvr-scripted").json()
        assert team["strategy"] == "gvr" and team["spec"]["roles"]["verifier"]["check"] == "llm"
        assert "generator" in team["mermaid"] and "verifier" in team["mermaid"]
        assert client.get("/teams/gvr").json()["name"] == "gvr-scripted"  # the file stem


@pytest.fixture(params=["ledger", "redis", "postgres+redis"])
def shared_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """What two servers share: a SQLite ledger (alone, or with a Redis under its own
    prefix), or PostgreSQL (a fresh schema) with Redis, the way a deployment runs."""
    if request.param == "ledger":
        yield {}
        return
    from memory_fixtures import REDIS_TEST_URL, pg_schema, redis_reachable

    why = redis_reachable()
    if why is not None:
        pytest.skip(why)
    prefix = f"concilium-test:{uuid.uuid4().hex[:10]}:"
    env = {"CONCILIUM_REDIS_URL": REDIS_TEST_URL, "CONCILIUM_REDIS_PREFIX": prefix}
    with contextlib.ExitStack() as stack:
        if request.param == "postgres+redis":
            env["CONCILIUM_DATABASE_URL"] = stack.enter_context(pg_schema())
        yield env
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    for key in client.scan_iter(match=prefix + "*", count=500):
        client.delete(key)
    client.close()


def test_two_processes_share_the_ledger(tmp_path: Path, shared_env: dict[str, str]) -> None:
    """A run started on one server is listed and followed live from another (from the
    polled ledger, or from Redis), and resumed there after the first one cancelled it."""
    home = tmp_path / "shared-home"
    with contextlib.ExitStack() as servers:  # stopped before the schema is dropped
        first = start_server(tmp_path, home=home, name="first", env=shared_env)
        servers.callback(stop_server, first)
        second = start_server(tmp_path, home=home, name="second", env=shared_env)
        servers.callback(stop_server, second)
        _share_a_run(first, second)


def _share_a_run(first: Server, second: Server) -> None:
    with first.client() as a, second.client() as b:
        run_id = a.post("/runs", json={"team": "gvr-scripted", "task": TASK}).json()["run_id"]
        deadline = time.monotonic() + 30
        while run_id not in [r["id"] for r in b.get("/runs").json()]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        followed = []
        for event in events(b, run_id):
            followed.append(event)
            if event["type"] == "step" and event["seq"] == 2:
                break
        assert [e["type"] for e in followed] == ["run_start", "step", "step"]
        assert b.post(f"/runs/{run_id}/cancel").status_code == 409  # not running there
        assert a.post(f"/runs/{run_id}/cancel").json()["status"] == "cancelled"
        # the ledger itself says so (b knows the run from the ledger only)
        assert b.get(f"/runs/{run_id}").json()["status"] == "cancelled"
        assert run_id in [r["id"] for r in b.get("/runs", params={"status": "cancelled"}).json()]
        assert b.post(f"/runs/{run_id}/resume").status_code == 202
        kinds = [e["type"] for e in events(b, run_id)]
        assert kinds[0] == "run_start" and kinds[-1] == "run_end"
        run = second.wait_run(run_id)
        assert run["status"] == "ok" and [s["role"] for s in run["steps"]] == GVR_STEPS
        assert a.get(f"/runs/{run_id}").json()["status"] == "ok"


def test_schemathesis_finds_no_server_error(server: Server, tmp_path: Path) -> None:
    st = shutil.which("schemathesis") or shutil.which("st")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "1",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "60",
         "--generation-deterministic", "--no-color",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)  # its cache goes there
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "passed" in done.stdout and "failed" not in done.stdout.split("SUMMARY")[-1]
