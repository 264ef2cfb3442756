"""An embedded team graph closes the MCP servers its tools connected to.

A service embeds ``team.compile()`` and calls ``ainvoke`` or ``astream``, with or
without its own ``RunContext``. The role's tool lives in a real MCP server process
(``tests/mcp_server.py``, started by the run over stdio), which writes its pid to a
file; after the invocation the process must be gone. These used to stay alive until
the service's process exited: one server per request.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from waiting import wait_for

from concilium import load_team
from concilium.agents.providers import scripted

TASK = "What is 17 * 24 + 3?"
MCP_SERVER = Path(__file__).resolve().parent / "mcp_server.py"
CALL = '<tool_call>{"name": "evaluate", "arguments": {"expression": "17 * 24 + 3"}}'


def answer_from_result(call: scripted.ScriptCall) -> str:
    found = re.search(r"<tool_result[^>]*>(.*?)</tool_result>", call.messages[-1]["content"],
                      re.S)
    assert found is not None, call.messages[-1]
    return f"The tool says {found.group(1)}.\nAnswer: {found.group(1)}"


def mcp_team(pid_file: Path, model: str) -> Any:
    return load_team({
        "name": "emb-mcp",
        "strategy": "single",
        "model": f"scripted/{model}",
        "mcp": {"demo": {"command": [sys.executable, str(MCP_SERVER)],
                         "env": {"MCP_PID_FILE": str(pid_file)}, "quiet": True}},
        "roles": {"generator": {"tools": ["mcp:demo/evaluate"]}},
    })


def script() -> scripted.Script:
    return scripted.Script({"generator": [CALL, answer_from_result]})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return not stat.read_text().split(") ")[-1].startswith("Z")
    except FileNotFoundError:
        return False


def server_pid(pid_file: Path) -> int:
    return int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(),
                        what="the MCP server to write its pid"))


def wait_gone(pid: int, why: str) -> None:
    wait_for(lambda: not alive(pid), what=f"the MCP server (pid {pid}) to stop {why}")


async def test_ainvoke_without_a_context_stops_the_server(tmp_path: Path) -> None:
    pid_file = tmp_path / "mcp.pid"
    graph = mcp_team(pid_file, "emb-mcp1").compile()
    with scripted.use("emb-mcp1", script()):
        state = await graph.ainvoke({"task": TASK})
    assert state["answer"]["value"] == "411"  # from the MCP tool's result
    wait_gone(server_pid(pid_file), "after ainvoke returned")


async def test_a_users_context_is_closed_at_the_end_of_the_invocation(tmp_path: Path) -> None:
    pid_file = tmp_path / "mcp.pid"
    team = mcp_team(pid_file, "emb-mcp2")
    graph = team.compile()
    async with team.context() as ctx:
        with scripted.use("emb-mcp2", script()):
            state = await graph.ainvoke({"task": TASK}, context=ctx)
        assert state["answer"]["value"] == "411"
        wait_gone(server_pid(pid_file), "after ainvoke with the user's context returned")
        assert ctx.toolbox is None and not graph.open_contexts


async def test_aclose_stops_the_server_of_an_abandoned_stream(tmp_path: Path) -> None:
    """A caller that stops reading a stream half-way: ``graph.aclose()`` (or leaving
    ``async with graph``) closes what the invocation opened."""
    pid_file = tmp_path / "mcp.pid"
    team = mcp_team(pid_file, "emb-mcp3")
    with scripted.use("emb-mcp3", script()):
        async with team.compile() as graph:
            stream = graph.astream({"task": TASK}, stream_mode="custom")
            async for event in stream:  # read until the tool has answered, then stop
                if event.get("type") == "step" and event["step"]["kind"] == "tool":
                    break
            pid = server_pid(pid_file)
            assert alive(pid) and len(graph.open_contexts) == 1
        wait_gone(pid, "after the graph was closed")
        assert not graph.open_contexts
        await stream.aclose()  # type: ignore[attr-defined]


async def test_an_inner_teams_server_stops_when_the_outer_run_ends(tmp_path: Path) -> None:
    """A team file as a node of a custom graph (a subgraph with a context of its own):
    its MCP server stops when its run ends, not when the process does."""
    pid_file = tmp_path / "mcp.pid"
    inner = mcp_team(pid_file, "emb-mcp4").spec.model_dump(mode="json", exclude_unset=True)
    inner["model"] = "scripted/emb-mcp4"
    (tmp_path / "inner.json").write_text(json.dumps(inner))
    outer = tmp_path / "outer.json"
    outer.write_text(json.dumps({
        "name": "outer",
        "model": "scripted/emb-mcp4",
        "strategy": {"name": "graph", "edges": [{"from": "solver", "to": "check"}],
                     "finish": ["check"]},
        "roles": {"solver": {"team": "inner.json"}, "check": {"role": "verifier"}},
    }))
    replies = scripted.Script({"generator": [CALL, answer_from_result],
                               "check": ["VERDICT: correct"]})
    with scripted.use("emb-mcp4", replies):
        result = await load_team(outer).arun(TASK)
    assert result.status == "ok" and result.answer == "411"
    assert [s["node"] for s in result.steps] == [
        "solver/generator", "solver/generator", "solver/generator", "check"]
    wait_gone(server_pid(pid_file), "after the outer run ended")
