"""A person in the loop through ``concilium serve``: a real uvicorn server process.

The run pauses at the person; ``GET /runs/{id}`` lists the question, the SSE events
announce it, ``POST /runs/{id}/resume`` answers it, and a paused run survives the
server being stopped and started again (its checkpoint is in the database).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serve_fixtures import RIGHT, TASK, WRONG, Server, serve, write_teams  # noqa: F401

TEAMS = {
    "gvr_human": {
        "name": "gvr-human",
        "strategy": "gvr",
        "model": "scripted/people",
        "limits": {"max_rounds": 2, "max_llm_calls": 8},
        "roles": {"generator": {}, "verifier": {"role": "human"}, "refiner": {}},
    }
}
PEOPLE = {
    "people": {
        "rules": [{"role": "generator", "reply": WRONG}, {"role": "refiner", "reply": RIGHT}]
    }
}


def events(server: Server, run_id: str) -> list[dict[str, Any]]:
    with server.client() as client, client.stream("GET", f"/runs/{run_id}/events") as reply:
        return [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith("data:")]


def test_a_paused_run_is_answered_over_http_and_survives_a_restart(
    serve: Callable[..., Server],  # noqa: F811
    tmp_path: Path,
) -> None:
    teams = write_teams(tmp_path / "teams", tmp_path / "scripts", TEAMS, PEOPLE)
    home = tmp_path / "home"
    env = {"CONCILIUM_SCRIPTS_DIR": str(tmp_path / "scripts")}
    first = serve(teams=teams, home=home, env=env, name="before")
    with first.client() as client:
        started = client.post(
            "/runs", json={"team": "gvr-human", "task": TASK, "run_id": "ask-1", "reference": "411"}
        )
        assert started.status_code == 202, started.text
        run = first.wait_run("ask-1")
        assert run["status"] == "paused" and run["answer"] == "403"
        [question] = run["pending"]
        assert question["node"] == "verifier" and question["kind"] == "verifier"
        assert "Is the final answer 403 correct?" in question["question"]
        said = events(first, "ask-1")
        assert [e["type"] for e in said][-2:] == ["interrupt", "run_end"]
        assert said[-2]["question"]["id"] == question["id"] and said[-1]["status"] == "paused"
        listed = client.get("/runs", params={"status": "paused"}).json()
        assert [r["id"] for r in listed] == ["ask-1"]
        answered = client.post("/runs/ask-1/resume", json={"answer": "no, 17 * 24 is 408"})
        assert answered.status_code == 202, answered.text
        again = first.wait_run("ask-1")
        assert again["status"] == "paused" and again["answer"] == "411"
    from serve_fixtures import stop_server

    stop_server(first)  # the process that paused it is gone

    second = serve(teams=teams, home=home, env=env, name="after")
    with second.client() as client:
        run = client.get("/runs/ask-1").json()
        assert run["status"] == "paused" and not run["live"]
        [question] = run["pending"]  # read from the checkpoint by a new process
        assert "Is the final answer 411 correct?" in question["question"]
        wrong_id = client.post("/runs/ask-1/resume", json={"answer": "yes", "interrupt_id": "nope"})
        assert wrong_id.status_code == 409 and "no pending question" in wrong_id.text
        done = client.post("/runs/ask-1/resume", json={"answer": "yes"})
        assert done.status_code == 202, done.text
        final = second.wait_run("ask-1")
    assert final["status"] == "ok" and final["answer"] == "411" and final["correct"] is True
    assert final["pending"] == [] and final["llm_calls"] == 2
    people = [s for s in final["steps"] if s["kind"] == "human"]
    assert [s["output"] for s in people] == ["no, 17 * 24 is 408", "yes"]
