"""Token streaming: the model door, ``Team.astream``, LangGraph's messages mode, the CLI
and ``concilium serve``, against the scripted provider and a real SSE model server.

The SSE server (``tests/sse_model_server.py``) is a process of its own speaking
OpenAI's streaming wire format, so litellm's real OpenAI client parses real chunks.
Every streamed run is compared with the same run unstreamed: same text, same usage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_fixtures import start_server as start_serve
from serve_fixtures import stop_server, write_teams
from waiting import wait_for

from concilium.agents.llm import Delta, allow_only, chat
from concilium.agents.providers import scripted
from concilium.team import load_team

REPO = Path(__file__).resolve().parent.parent
REPLY = "Let me work it out.\n6 times 7 is 42.\nAnswer: 42"
QUESTION = [{"role": "user", "content": "What is 6 times 7?"}]


@pytest.fixture
def sse_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real SSE model server; ``gate`` is the file that releases a held stream."""
    gate = tmp_path / "gate"
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "sse_model_server.py"),
            "--reply",
            REPLY,
            "--gate",
            str(gate),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    try:
        yield {"url": f"http://127.0.0.1:{port}/v1", "gate": gate, "process": process}
    finally:
        process.terminate()
        process.wait(10)


def debate_spec(model: str = "scripted/stream", **extra: Any) -> dict[str, Any]:
    return {
        "name": "streamed",
        "model": model,
        "strategy": {"name": "debate", "rounds": 2, "debaters": 2, "stop_on_consensus": False},
        "roles": {"debater": {}},
        **extra,
    }


@pytest.fixture
def script() -> Iterator[scripted.Script]:
    with scripted.use("stream", scripted.Script(default=REPLY)) as found:
        yield found


async def test_door_streams_the_same_reply_and_usage(script: scripted.Script) -> None:
    deltas: list[Delta] = []
    streamed = await chat(QUESTION, model="scripted/stream", on_delta=deltas.append)
    whole = await chat(QUESTION, model="scripted/stream")
    assert len(deltas) > 5, "the reply came in pieces"
    assert "".join(d.text for d in deltas) == streamed.text == whole.text == REPLY
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (
        whole.prompt_tokens,
        whole.completion_tokens,
    )
    assert streamed.first_token_ms is not None and whole.first_token_ms is None


async def test_door_streams_from_an_sse_server(sse_server: dict[str, Any]) -> None:
    sse_server["gate"].touch()
    deltas: list[Delta] = []
    with allow_only("openai"):
        streamed = await chat(
            QUESTION, model="openai/fake", api_base=sse_server["url"], on_delta=deltas.append
        )
        whole = await chat(QUESTION, model="openai/fake", api_base=sse_server["url"])
    assert [d.text for d in deltas] == [
        "Let ",
        "me ",
        "work ",
        "it ",
        "out.\n",
        "6 ",
        "times ",
        "7 ",
        "is ",
        "42.\n",
        "Answer: ",
        "42",
    ]
    assert streamed.text == whole.text == REPLY
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (5, 12)
    assert (whole.prompt_tokens, whole.completion_tokens) == (5, 12)


async def test_astream_yields_deltas_then_steps_then_the_result(script: scripted.Script) -> None:
    team = load_team(debate_spec())
    events = [e async for e in team.astream("What is 6 times 7?", memory=False)]
    plain = await team.arun("What is 6 times 7?", memory=False)
    assert events[-1]["type"] == "result"
    result = events[-1]["result"]
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert len(steps) == 4  # two debaters, two rounds
    for step in steps:  # each call's text arrived before its step, and adds up to it
        index = next(
            i for i, e in enumerate(events) if e["type"] == "step" and e["step"]["id"] == step["id"]
        )
        pieces = [
            e
            for e in events[:index]
            if e["type"] == "delta" and e["node"] == step["node"] and e["round"] == step["round"]
        ]
        assert len(pieces) > 5
        assert "".join(p["text"] for p in pieces) == step["output"]
    assert result.usage == plain.usage
    assert result.usage.llm_calls == 4 and result.answer == plain.answer == "42"


async def test_usage_with_streaming_equals_without_on_a_real_server(
    sse_server: dict[str, Any],
) -> None:
    sse_server["gate"].touch()
    team = load_team(debate_spec("openai/fake", api_base=sse_server["url"]))
    seen: list[dict[str, Any]] = []
    with allow_only("openai"):
        streamed = await team.arun("What is 6 times 7?", memory=False, on_delta=seen.append)
        plain = await team.arun("What is 6 times 7?", memory=False)
    assert streamed.usage == plain.usage
    assert streamed.usage.completion_tokens == 4 * 12
    assert "".join(e["text"] for e in seen if e["node"] == "debater_1" and e["round"] == 0) == REPLY


async def test_messages_stream_mode_yields_message_chunks(script: scripted.Script) -> None:
    from langchain_core.messages import AIMessageChunk

    graph = load_team(debate_spec()).compile()
    chunks: list[tuple[Any, dict[str, Any]]] = []
    async for chunk, meta in graph.astream(
        {"task": "What is 6 times 7?", "lessons": [], "steps": []}, stream_mode="messages"
    ):
        chunks.append((chunk, meta))
    assert all(isinstance(c, AIMessageChunk) for c, _ in chunks)
    assert {m["langgraph_node"] for _, m in chunks} == {"debater"}
    by_call: dict[str, str] = {}
    for chunk, _ in chunks:
        by_call[chunk.id] = by_call.get(chunk.id, "") + str(chunk.content)
    assert len(by_call) == 4 and set(by_call.values()) == {REPLY}
    assert len(chunks) == 4 * 12


async def test_messages_mode_off_makes_no_stream(script: scripted.Script) -> None:
    """Without a listener a compiled team's calls are not streamed (nothing to pay for)."""
    graph = load_team(debate_spec()).compile()
    seen: list[Any] = []
    async for part in graph.astream(
        {"task": "What is 6 times 7?", "lessons": [], "steps": []}, stream_mode="custom"
    ):
        seen.append(part)
    assert seen and all(p["type"] == "step" for p in seen)
    assert all(call.params.get("stream") is None for call in script.calls)


def test_cli_shows_text_before_the_model_finishes(
    tmp_path: Path, sse_server: dict[str, Any]
) -> None:
    """The first piece is on the terminal while the server still holds the rest back."""
    team = tmp_path / "team.yaml"
    team.write_text(
        json.dumps(
            {
                "name": "live",
                "strategy": "single",
                "model": "openai/fake",
                "api_base": sse_server["url"],
                "roles": {"generator": {}},
            }
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CONCILIUM_HOME": str(tmp_path / "home"),
        "OPENAI_API_KEY": "unused",
    }
    code = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "run", str(team), "6 times 7?"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    seen: list[str] = []

    def first_piece() -> bool:
        seen.append(process.stderr.read(1))  # type: ignore[union-attr]
        return "".join(seen).endswith("[generator r0] Let ")

    wait_for(first_piece, what="the first streamed piece on stderr", process=process)
    assert not sse_server["gate"].exists()  # the rest of the reply is not sent yet
    sse_server["gate"].touch()
    out, rest = process.communicate(timeout=300)
    text = "".join(seen) + rest
    assert process.returncode == 0, text
    assert "[generator r0] Let me work it out.\n6 times 7 is 42.\nAnswer: 42\n" in text
    assert out.startswith("Answer: 42")


def test_cli_no_stream_flag(tmp_path: Path, sse_server: dict[str, Any]) -> None:
    sse_server["gate"].touch()
    team = tmp_path / "team.yaml"
    team.write_text(
        json.dumps(
            {
                "name": "live",
                "strategy": "single",
                "model": "openai/fake",
                "api_base": sse_server["url"],
                "roles": {"generator": {}},
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "CONCILIUM_HOME": str(tmp_path / "home")}
    code = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "run", str(team), "6 times 7?", "--no-stream"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "[generator" not in done.stderr and "generator" in done.stderr  # the step line
    assert done.stdout.startswith("Answer: 42")


def test_openai_sdk_streams_tokens_from_concilium_serve(tmp_path: Path) -> None:
    from openai import OpenAI

    teams = write_teams(
        tmp_path / "teams",
        tmp_path / "scripts",
        teams={"debate": {**debate_spec("scripted/stream"), "name": "debate"}},
        script_overrides={"stream": {"default": REPLY}},
    )
    server = start_serve(tmp_path, teams=teams)
    try:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        ask = {"model": "debate", "messages": [{"role": "user", "content": "6 times 7?"}]}
        chunks = list(
            client.chat.completions.create(
                **ask, stream=True, stream_options={"include_usage": True}
            )
        )
        whole = client.chat.completions.create(**ask)
    finally:
        stop_server(server)
    thinking: dict[tuple[str, int], str] = {}
    content = ""
    for chunk in chunks[:-1]:
        delta = chunk.choices[0].delta
        content += delta.content or ""
        extra = (chunk.model_extra or {}).get("concilium") or {}
        if extra.get("type") == "delta":
            key = (extra["node"], extra["round"])
            thinking[key] = thinking.get(key, "") + (delta.model_extra or {})["reasoning_content"]
    assert thinking == {(n, r): REPLY for n in ("debater_1", "debater_2") for r in (0, 1)}
    assert content == whole.choices[0].message.content == "42"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert whole.usage is not None and whole.usage.completion_tokens > 0


@pytest.mark.integration
async def test_local_model_streams_the_same_text_and_usage() -> None:
    pytest.importorskip("llama_cpp")
    messages = [{"role": "user", "content": "Name three colours."}]
    # llama.cpp reuses a prompt already in its cache, which can change a greedy reply
    # (streamed or not): the first call puts it there, so both compared calls reuse it.
    await chat(messages, model="local/smollm2", max_tokens=24)
    deltas: list[Delta] = []
    streamed = await chat(messages, model="local/smollm2", max_tokens=24, on_delta=deltas.append)
    whole = await chat(messages, model="local/smollm2", max_tokens=24)
    assert streamed.text == whole.text and "".join(d.text for d in deltas) == whole.text
    assert len(deltas) > 3
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (
        whole.prompt_tokens,
        whole.completion_tokens,
    )


async def test_streamed_text_is_redacted_as_a_stream_for_every_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``Bearer`` token (the piece after its word: masked only with it) or a key reaches
    neither ``Team.astream`` (what ``concilium serve`` streams) nor LangGraph's
    messages stream, and the masked pieces still add up to the step's masked output."""
    secret, token = "hunter2-demo-secret", "abcdefghijklmnopqrstu"
    monkeypatch.setenv("DEMO_API_KEY", secret)
    said = f"The key is {secret} and Bearer {token} here.\nAnswer: 42"
    with scripted.use("cut", scripted.Script(default=said)):  # streamed word by word
        team = load_team(debate_spec("scripted/cut", strategy="single",
                                     roles={"generator": {}}))
        events = [e async for e in team.astream("What is 6 times 7?", memory=False)]
        graph = team.compile()
        messages = [str(chunk.content) async for chunk, _meta in graph.astream(
            {"task": "What is 6 times 7?"}, stream_mode="messages")]
    deltas = [e["text"] for e in events if e["type"] == "delta"]
    step = next(e["step"] for e in events if e["type"] == "step")
    assert "".join(deltas) == step["output"] == (
        "The key is *** and Bearer *** here.\nAnswer: 42")
    assert "".join(messages) == step["output"]
    for shown in (deltas, messages):
        assert shown and not any(secret[:4] in s or token[:5] in s for s in shown), shown
