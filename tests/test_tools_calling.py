"""Roles that call tools: the loop, both protocols, user and MCP tools, the ledger, faults.

The model is a real OpenAI-compatible HTTP server written here (stdlib ``http.server``
on 127.0.0.1, port 0): offered tools, it calls the first one with the task's
expression, then answers from the tool's result; its ``mode`` makes it misbehave the
ways a real server can (unknown tool, malformed JSON arguments, parallel calls, a
``tool_calls`` finish with no call, never stopping). Every request goes through
litellm's real OpenAI client. MCP tools come from a real server process
(``tests/mcp_server.py``, built with the SDK); the prompt protocol is driven by the
``scripted/`` provider, whose replies go through the real parser.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from waiting import wait_for

from concilium import TeamFileError, load_team
from concilium.agents.llm import allow_only
from concilium.agents.providers import scripted
from concilium.agents.tool_loop import parse_prompt_calls
from concilium.cli.app import app
from concilium.errors import ConfigError
from concilium.team import RunFailed

TASK = "What is 17 * 24 + 3?"
MCP_SERVER = Path(__file__).resolve().parent / "mcp_server.py"


@dataclass
class ToolServer:
    """An OpenAI-compatible model that uses the tools it is offered (see module doc)."""

    mode: str = "call"
    """call | unknown | bad_json | parallel | finish_only | forever"""
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        tools = body.get("tools") or []
        results = []
        for message in reversed(messages):
            if message["role"] != "tool":
                break
            results.insert(0, message["content"])
        if results and self.mode != "forever":
            if results[0].startswith("error"):
                return _message(f"The tool failed ({results[0]}).\nAnswer: none")
            return _message(f"The tool says {results[0]}.\nAnswer: {results[0]}")
        if not tools:
            return _message("Answer: 0")
        task = next(m["content"] for m in messages if m["role"] == "user")
        expression = re.search(r"\d[\d\s+\-*/().]*\d", task)
        function = tools[0]["function"]
        params = function["parameters"]
        argument = (params.get("required") or list(params["properties"]))[0]
        arguments = json.dumps({argument: expression.group(0) if expression else task})
        name = function["name"]
        if self.mode == "unknown":
            name = "no_such_tool"
        if self.mode == "bad_json":
            arguments = arguments[:-1]  # the closing brace lost
        calls = [_call("call_a", name, arguments)]
        if self.mode == "parallel":
            calls.append(_call("call_b", name, json.dumps({argument: "1 + 1"})))
        if self.mode == "finish_only":
            calls = []
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": calls or None,
            "finish_reason": "tool_calls",
        }

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.seen.append(body)
                message = server.reply(body)
                finish = message.pop("finish_reason", "stop")
                if message.get("tool_calls") is None:
                    message.pop("tool_calls", None)
                data = json.dumps(
                    {
                        "id": f"chatcmpl-{len(server.seen)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", ""),
                        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _message(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.fixture
def tool_server() -> Iterator[Callable[..., ToolServer]]:
    """Start tool-calling model servers on free loopback ports; they stop with the test."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(mode: str = "call") -> ToolServer:
        server = ToolServer(mode=mode)
        http = ThreadingHTTPServer(("127.0.0.1", 0), server.handler())
        http.daemon_threads = True
        server.url = f"http://127.0.0.1:{http.server_address[1]}/v1"
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        started.append((http, thread))
        return server

    with allow_only("openai", "scripted"):
        yield start
    for http, thread in started:
        http.shutdown()
        http.server_close()
        thread.join(timeout=10)


def team(
    server: ToolServer, tools: list[str], *, model: str = "openai/gpt-4o-mini", **extra: Any
) -> dict[str, Any]:
    role = {"model": model, "api_base": server.url, "tools": tools}
    role.update(extra.pop("role", {}))
    return {
        "name": "tooled",
        "strategy": "single",
        "retry": {"attempts": 1},
        "roles": {"generator": role},
        **extra,
    }


def kinds(steps: list[dict[str, Any]]) -> list[str]:
    return [s["kind"] if s["kind"] == "llm" else f"tool:{s['model']}" for s in steps]


# ---------------------------------------------------------------------------- native calling


async def test_native_loop_calls_the_calculator_and_answers_from_its_result(
    tool_server: Callable[..., ToolServer],
) -> None:
    server = tool_server()
    result = await load_team(team(server, ["calculator"])).arun(TASK, reference="411")
    assert result.status == "ok" and result.answer == "411" and result.correct is True
    offered = server.seen[0]["tools"]
    assert [t["function"]["name"] for t in offered] == ["calculator"]
    assert offered[0]["function"]["parameters"]["required"] == ["expression"]
    # The second request carries the assistant's call and the tool's result, linked by id.
    second = server.seen[1]["messages"]
    assert second[-2]["role"] == "assistant" and second[-2]["tool_calls"][0]["id"] == "call_a"
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": "call_a",
        "name": "calculator",
        "content": "411",
    }
    assert kinds(result.steps) == ["llm", "tool:calculator", "llm"]
    turn, tool, final = result.steps
    assert turn["parsed"]["finish_reason"] == "tool_calls"
    assert 'calculator({"expression": "17 * 24 + 3"})' in turn["output"]  # content was null
    assert tool["messages"] == [{"role": "tool_call", "content": '{"expression": "17 * 24 + 3"}'}]
    assert tool["output"] == "411" and tool["parsed"]["ok"] is True
    assert tool["latency_ms"] >= 0 and tool["node"] == "generator"
    assert final["answer"] == "411"
    assert result.usage.llm_calls == 2 and result.usage.tool_calls == 1
    assert result.usage.total_tokens == 50  # both turns are paid for


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("unknown", "error: unknown tool 'no_such_tool'; the tools are: calculator"),
        ("bad_json", "error: the arguments of 'calculator' are not valid JSON"),
    ],
)
async def test_a_bad_call_is_answered_with_a_tool_error(
    tool_server: Callable[..., ToolServer], mode: str, expected: str
) -> None:
    server = tool_server(mode)
    result = await load_team(team(server, ["calculator"])).arun(TASK)
    assert result.status == "ok"
    tool = [s for s in result.steps if s["kind"] == "tool"]
    assert len(tool) == 1 and tool[0]["output"].startswith(expected)
    assert tool[0]["parsed"]["ok"] is False
    assert server.seen[1]["messages"][-1]["content"] == tool[0]["output"]  # the model saw it
    if mode == "bad_json":
        assert 'send a JSON object such as {"expression": "17 * 24 + 3"}' in tool[0]["output"]


async def test_parallel_calls_in_one_reply_all_run_and_answer_in_order(
    tool_server: Callable[..., ToolServer],
) -> None:
    server = tool_server("parallel")
    result = await load_team(team(server, ["calculator"])).arun(TASK)
    tools = [s for s in result.steps if s["kind"] == "tool"]
    assert [t["output"] for t in tools] == ["411", "2"]
    sent = server.seen[1]["messages"]
    assert [(m["tool_call_id"], m["content"]) for m in sent[-2:]] == [
        ("call_a", "411"),
        ("call_b", "2"),
    ]
    assert result.usage.tool_calls == 2


async def test_finish_reason_tool_calls_without_a_call_fails_clearly(
    tool_server: Callable[..., ToolServer],
) -> None:
    server = tool_server("finish_only")
    with pytest.raises(RunFailed, match="finish_reason 'tool_calls' but sent no tool call"):
        await load_team(team(server, ["calculator"])).arun(TASK)


async def test_max_tool_calls_stops_a_model_that_never_stops_calling(
    tool_server: Callable[..., ToolServer],
) -> None:
    server = tool_server("forever")
    spec = team(server, ["calculator"], limits={"max_tool_calls": 3})
    result = await load_team(spec).arun(TASK)
    assert result.status == "stopped"
    assert "max_tool_calls (3) reached" in (result.stop_reason or "")
    assert len(server.seen) == 4  # three turns whose calls ran, the fourth is refused
    assert [s["output"] for s in result.steps if s["kind"] == "tool"] == ["411"] * 3
    assert result.usage.llm_calls == 4  # the refused turn was paid for: it is in the ledger


async def test_native_protocol_can_be_forced_for_a_model_litellm_does_not_know(
    tool_server: Callable[..., ToolServer],
) -> None:
    server = tool_server()
    spec = team(
        server, ["calculator"], model="openai/our-own-model", role={"tool_protocol": "native"}
    )
    result = await load_team(spec).arun(TASK)
    assert result.answer == "411" and "tools" in server.seen[0]


# ---------------------------------------------------------------------------- user tools


USER_TOOLS = '''
from langchain_core.tools import tool


def digits(expression: str, base: int = 10) -> int:
    """Count the digits of a number written as an expression.

    Args:
        expression: the arithmetic expression whose value is counted.
        base: the base to write it in.
    """
    return len(str(eval(expression, {"__builtins__": {}})))


def boom(expression: str) -> str:
    """A tool that always raises."""
    raise ValueError("boom went the tool on " + expression)


@tool
def shout(expression: str) -> str:
    """Repeat the expression in capitals (a LangChain tool)."""
    return expression.upper() + "!"
'''


@pytest.fixture
def user_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "user_tools_mod.py").write_text(USER_TOOLS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_tools_mod"


async def test_a_typed_function_is_a_tool_with_its_docstring_schema(
    tool_server: Callable[..., ToolServer], user_tools: str
) -> None:
    server = tool_server()
    result = await load_team(team(server, [f"{user_tools}:digits", "calculator"])).arun(TASK)
    offered = server.seen[0]["tools"][0]["function"]
    assert offered["name"] == "digits"
    assert offered["description"].startswith("Count the digits")
    assert (
        offered["parameters"]["properties"]["expression"]["description"]
        == "the arithmetic expression whose value is counted."
    )
    assert offered["parameters"]["required"] == ["expression"]
    tool = next(s for s in result.steps if s["kind"] == "tool")
    assert tool["model"] == "digits" and tool["output"] == "3"  # 411 has three digits
    assert tool["parsed"]["source"] == "python" and result.answer == "3"


async def test_a_tool_that_raises_is_reported_to_the_model(
    tool_server: Callable[..., ToolServer], user_tools: str
) -> None:
    server = tool_server()
    result = await load_team(team(server, [f"{user_tools}.boom"])).arun(TASK)
    tool = next(s for s in result.steps if s["kind"] == "tool")
    assert tool["output"] == (
        "error: tool 'boom' failed: ValueError: boom went the tool on 17 * 24 + 3"
    )
    assert server.seen[1]["messages"][-1]["content"] == tool["output"]
    assert result.status == "ok"


async def test_a_langchain_tool_is_offered_like_a_builtin(
    tool_server: Callable[..., ToolServer], user_tools: str
) -> None:
    server = tool_server()
    result = await load_team(team(server, [f"{user_tools}:shout"])).arun(TASK)
    tool = next(s for s in result.steps if s["kind"] == "tool")
    assert tool["output"] == "17 * 24 + 3!" and tool["parsed"]["source"] == "langchain"


def test_tool_references_are_checked_when_the_team_loads(user_tools: str) -> None:
    def load(tools: list[str], **extra: Any) -> Any:
        return load_team(
            {"name": "t", "strategy": "single", "roles": {"generator": {"tools": tools}}, **extra}
        )

    with pytest.raises(TeamFileError, match="cannot import module 'no_such_module'"):
        load(["no_such_module:tool"])
    with pytest.raises(TeamFileError, match="module 'user_tools_mod' has no 'nothing'"):
        load([f"{user_tools}:nothing"])
    with pytest.raises(TeamFileError, match="MCP server 'nowhere' is not declared"):
        load(["mcp:nowhere"])
    with pytest.raises(TeamFileError, match="unknown tool 'web_search'"):
        load(["web_search"])
    with pytest.raises(TeamFileError, match="either `command`"):
        load([], mcp={"both": {"command": ["x"], "url": "http://127.0.0.1:1/mcp"}})
    assert (
        load(["calculator", "memory_search", f"{user_tools}:digits"])
        .spec.roles["generator"]
        .tools[-1]
        == f"{user_tools}:digits"
    )


# ---------------------------------------------------------------------------- MCP


def _mcp(pid_file: Path, *, as_text: bool = False) -> dict[str, Any]:
    import shlex

    command = [sys.executable, str(MCP_SERVER)]
    return {
        "demo": {
            "command": shlex.join(command) if as_text else command,
            "env": {"MCP_PID_FILE": str(pid_file)},
            "quiet": True,
        }
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


async def test_mcp_server_tools_are_offered_and_the_server_stops_with_the_run(
    tool_server: Callable[..., ToolServer], tmp_path: Path
) -> None:
    server = tool_server()
    pid_file = tmp_path / "mcp.pid"
    spec = team(server, ["mcp:demo"], mcp=_mcp(pid_file))
    result = await load_team(spec).arun(TASK)
    assert [t["function"]["name"] for t in server.seen[0]["tools"]] == [
        "evaluate",
        "shout",
        "explode",
    ]
    tool = next(s for s in result.steps if s["kind"] == "tool")
    assert tool["model"] == "evaluate" and tool["output"] == "411"
    assert tool["parsed"]["source"] == "mcp:demo" and result.answer == "411"
    pid = int(pid_file.read_text())
    wait_for(lambda: not _alive(pid), what=f"the MCP server (pid {pid}) to stop after the run")


async def test_a_failing_mcp_tool_and_an_unknown_one(
    tool_server: Callable[..., ToolServer], tmp_path: Path
) -> None:
    server = tool_server()
    spec = team(server, ["mcp:demo/explode"], mcp=_mcp(tmp_path / "a.pid", as_text=True))
    result = await load_team(spec).arun(TASK)
    tool = next(s for s in result.steps if s["kind"] == "tool")
    assert tool["output"].startswith("error: tool 'explode' failed: RuntimeError:")
    spec = team(server, ["mcp:demo/nope"], mcp=_mcp(tmp_path / "b.pid"))
    with pytest.raises(
        ConfigError,
        match="MCP server 'demo' has no tool 'nope'; it offers: evaluate, shout, explode",
    ):
        await load_team(spec).arun(TASK)
    pid = int((tmp_path / "b.pid").read_text())
    wait_for(lambda: not _alive(pid), what="the MCP server of the failed run to stop")


@pytest.fixture
def http_mcp_server(tmp_path: Path) -> Iterator[str]:
    """tests/mcp_server.py over Streamable HTTP on a free loopback port; its /mcp URL."""
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "mcp-http.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(MCP_SERVER), "--http", str(port)], stdout=log, stderr=log
    )

    def listening() -> bool:
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, what=f"the MCP HTTP server on port {port}", process=process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def test_an_http_mcp_server(
    tool_server: Callable[..., ToolServer], http_mcp_server: str
) -> None:
    server = tool_server()
    spec = team(server, ["mcp:web/shout"], mcp={"web": {"url": http_mcp_server}})
    result = await load_team(spec).arun(TASK)
    tool = next(s for s in result.steps if s["kind"] == "tool")
    assert tool["model"] == "shout" and tool["parsed"]["source"] == "mcp:web"
    assert tool["output"] == "17 * 24 + 3"  # no letters to capitalise: the text came back


async def test_an_mcp_server_that_does_not_start_is_a_clear_error(tmp_path: Path) -> None:
    spec = {
        "name": "t",
        "strategy": "single",
        "model": "scripted/never",
        "mcp": {
            "broken": {
                "command": [sys.executable, "-c", "import sys; sys.exit(3)"],
                "connect_timeout_s": 60,
                "quiet": True,
            }
        },
        "roles": {"generator": {"tools": ["mcp:broken"]}},
    }
    with pytest.raises(ConfigError, match=r"MCP server 'broken' .* failed to start"):
        await load_team(spec).arun(TASK)


# ---------------------------------------------------------------------------- prompt protocol


def _answer_from_result(call: scripted.ScriptCall) -> str:
    found = re.search(r'<tool_result name="calculator">(.*?)</tool_result>', call.prompt)
    assert found, call.prompt
    return f"The calculator says {found.group(1)}.\nAnswer: {found.group(1)}"


async def test_prompt_protocol_with_the_scripted_model() -> None:
    spec = {
        "name": "t",
        "strategy": "single",
        "model": "scripted/proto",
        "roles": {"generator": {"tools": ["calculator"]}},
    }
    first = (
        'Let me compute it.\n<tool_call>{"name": "calculator", '
        '"arguments": {"expression": "17 * 24 + 3"}}'
    )  # cut at the stop sequence
    with scripted.use(
        "proto", scripted.Script({"generator": [first, _answer_from_result]})
    ) as script:
        result = await load_team(spec).arun(TASK, reference="411")
    system, *demo = script.calls[0].messages[:5]
    assert system["role"] == "system" and "<tool_call>" in system["content"]
    assert "calculator(expression: string)" in system["content"]
    # a worked example before the task: small models copy it far better than instructions
    assert [m["role"] for m in demo] == ["user", "assistant", "user", "assistant"]
    assert demo[1]["content"].startswith('<tool_call>{"name": "calculator"')
    assert script.calls[0].messages[-1]["content"].endswith(TASK)
    assert "</tool_call>" in script.calls[0].params["stop"]
    assert script.calls[1].messages[-2]["content"].endswith("</tool_call>")
    assert result.answer == "411" and result.correct is True
    assert kinds(result.steps) == ["llm", "tool:calculator", "llm"]
    assert result.steps[1]["output"] == "411"
    assert result.steps[1]["messages"][0]["content"] == '{"expression": "17 * 24 + 3"}'


async def test_prompt_protocol_unreadable_call_is_fed_back() -> None:
    spec = {
        "name": "t",
        "strategy": "single",
        "model": "scripted/garbled",
        "roles": {"generator": {"tools": ["calculator", "python"]}},
    }
    replies = [
        "<tool_call>calculator(17 * 24)</tool_call>",
        "Answer: 408",
    ]
    with scripted.use("garbled", scripted.Script({"generator": replies})) as script:
        result = await load_team(spec).arun(TASK)
    tool = next(s for s in result.steps if s["kind"] == "tool")
    assert tool["output"].startswith("error: could not read the tool call")
    assert (
        'expected <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>' in tool["output"]
    )
    assert tool["output"] in script.calls[1].prompt
    assert result.answer == "408"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no call here", []),
        (
            '<tool_call>{"name": "calculator", "arguments": {"expression": "1+2"}}</tool_call>',
            [("calculator", '{"expression": "1+2"}')],
        ),
        (
            '<tool_call>\n```json\n[{"name": "a", "arguments": {}}, '
            '{"tool": "b", "args": {"x": 1}}]\n```\n</tool_call>',
            [("a", "{}"), ("b", '{"x": 1}')],
        ),
        (
            '<TOOL_CALL>{"function": {"name": "f", "arguments": "{\\"x\\": 2}"}}',
            [("f", '{"x": 2}')],
        ),
        ('<tool_call>{"expression": "3*3"}</tool_call>', [("calculator", '{"expression": "3*3"}')]),
        (  # SmolLM2 again: an invented result after the arguments, a brace missing
            '<tool_call>{"name": "calculator", "arguments": {"expression": (85 - 50) + 28},'
            '"result": {...}}',
            [("calculator", '{"expression": "(85 - 50) + 28"}')],
        ),
        (  # what SmolLM2 writes: the expression unquoted
            '<tool_call>{"name": "calculator", "arguments": {"expression": (45 - 7) * 3, "n": 2}}',
            [("calculator", '{"expression": "(45 - 7) * 3", "n": 2}')],
        ),
        (
            '<tool_call>{"name": "a"}</tool_call> then <tool_call>{"name": "b"}',
            [("a", "{}"), ("b", "{}")],
        ),
    ],
)
def test_parse_prompt_calls(text: str, expected: list[tuple[str, str]]) -> None:
    from concilium.tools.registry import builtin

    calls = parse_prompt_calls(text, only=builtin("calculator"))
    assert [(c.name, c.arguments) for c in calls] == expected
    assert all(c.problem is None for c in calls)


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>calculator 1+2</tool_call>",
        '<tool_call>{"arguments": {}}</tool_call>',
        "<tool_call>[1, 2]</tool_call>",
    ],
)
def test_parse_prompt_calls_reports_what_it_cannot_read(text: str) -> None:
    (call,) = parse_prompt_calls(text)
    assert call.problem is not None and call.name == ""


# ---------------------------------------------------------------------------- the ledger


async def test_tool_steps_are_in_the_ledger_and_runs_show(
    tool_server: Callable[..., ToolServer],
) -> None:
    server = tool_server()
    result = await load_team(team(server, ["calculator"])).arun(TASK)
    shown = CliRunner().invoke(app, ["runs", "show", result.run_id, "--json"])
    assert shown.exit_code == 0, shown.output
    steps = json.loads(shown.output)["steps"]
    assert [s["kind"] for s in steps] == ["llm", "tool", "llm"]
    assert steps[1]["model"] == "calculator" and steps[1]["output"] == "411"
    assert steps[1]["messages"][0]["content"] == '{"expression": "17 * 24 + 3"}'
    tree = CliRunner().invoke(app, ["runs", "show", result.run_id])
    assert tree.exit_code == 0, tree.output
    assert "(generator) tool calculator" in tree.output
    assert '{"expression": "17 * 24 + 3"} → 411' in tree.output
    assert '→ calculator({"expression": "17 * 24 + 3"})' in tree.output  # the turn that asked


async def test_the_example_team_calls_its_calculator(examples: Path) -> None:
    def generator(call: scripted.ScriptCall) -> str:
        if "<tool_result" in call.prompt:
            return _answer_from_result(call)
        return '<tool_call>{"name": "calculator", "arguments": {"expression": 6 * 7}}'

    gvr = load_team(examples / "gvr_tools.yaml", model="scripted/gvr-tools")
    script = scripted.Script(rules=[scripted.Rule(generator, role="generator")])
    with scripted.use("gvr-tools", script):
        result = await gvr.arun("What is 6 * 7?", reference="42")
    assert result.status == "ok" and result.correct is True, result.stop_reason
    assert [s["role"] for s in result.steps] == ["generator"] * 3 + ["verifier"]
    assert result.steps[1]["output"] == "42"
    assert result.usage.tool_calls == 2  # the model's call and the verifier's check
    assert load_team(examples / "single_mcp.yaml").spec.mcp["arith"].command == [
        "python",
        "examples/mcp/arith_server.py",
    ]


def test_concilium_run_shows_each_tool_call_as_it_happens(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("name: t\nstrategy: single\nroles:\n  generator: {tools: [calculator]}\n")
    first = '<tool_call>{"name": "calculator", "arguments": {"expression": "17 * 24 + 3"}}'
    with scripted.use("cli", scripted.Script({"generator": [first, _answer_from_result]})):
        result = CliRunner().invoke(app, ["run", str(path), TASK, "-m", "scripted/cli"])
    assert result.exit_code == 0, result.output
    assert "calculator" in result.stderr
    assert '{"expression": "17 * 24 + 3"} → 411' in result.stderr
    assert "Answer: 411" in result.stdout


async def test_memory_search_reads_the_runs_own_memory() -> None:
    from concilium.memory.store import Memory

    memory = Memory.open(redis_url=False)
    memory.remember(
        "Multiply before you add.",
        task="What is 3 + 4 * 5?",
        namespace="searchers",
        outcome="failure",
        verified_by="ground_truth",
    )
    memory.remember(  # not checked: never found by default, as with recall
        "Always answer 7.",
        task="What is 3 + 4 * 5?",
        namespace="searchers",
        outcome="failure",
    )
    spec = {
        "name": "searchers",
        "strategy": "single",
        "model": "scripted/mem",
        "memory": {"recall_k": 0},
        "roles": {"generator": {"tools": ["memory_search"]}},
    }
    first = '<tool_call>{"name": "memory_search", "arguments": {"query": "4 * 5 add"}}'
    with scripted.use("mem", scripted.Script({"generator": [first, "Answer: 411"]})) as script:
        result = await load_team(spec).arun(TASK)
    found = result.steps[1]["output"]
    assert "Multiply before you add." in found and "Always answer 7" not in found
    assert found in script.calls[1].prompt
