"""``/v1``: a team used as a model by the official ``openai`` SDK and LangChain's
``ChatOpenAI``, against a real ``concilium serve`` process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import httpx
import openai
import pytest

pytest.register_assert_rewrite("serve_fixtures")
from serve_fixtures import TASK, Server  # noqa: E402

pytest_plugins = ["serve_fixtures"]


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key or "unused",
                         max_retries=0, timeout=60)


def test_models_list_every_team_with_description_and_strategy(server: Server) -> None:
    models = client(server).models.list().data
    assert [m.id for m in models] == ["arith", "debate-scripted", "gvr-scripted"]
    by_id = {m.id: m.model_dump() for m in models}
    assert by_id["gvr-scripted"]["strategy"] == "gvr"
    assert by_id["arith"]["description"] == "One scripted call."
    assert client(server).models.retrieve("debate-scripted").id == "debate-scripted"


def test_chat_completion_is_the_teams_answer_and_whole_usage(server: Server) -> None:
    r = client(server).chat.completions.create(
        model="gvr-scripted", messages=[{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": TASK}])
    assert r.choices[0].message.content == "403"
    assert r.choices[0].finish_reason == "stop"
    ext = r.model_dump()["concilium"]
    # gvr: generator + 3 x (verifier, refiner) + the last verifier
    assert ext["llm_calls"] == 8 and ext["status"] == "ok"
    assert ext["stop_reason"] == "round limit (3) reached"
    assert r.id == f"chatcmpl-{ext['run_id']}" and r.model == "gvr-scripted"
    run = httpx.get(f"{server.url}/runs/{ext['run_id']}").json()
    assert r.usage.total_tokens == run["prompt_tokens"] + run["completion_tokens"] > 0
    assert len(run["steps"]) == 8  # recorded in the ledger like a CLI run


async def test_async_client_concurrent_requests(server: Server) -> None:
    aclient = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    replies = await asyncio.gather(*(
        aclient.chat.completions.create(model="arith", seed=i,
                                        messages=[{"role": "user", "content": TASK}])
        for i in range(4)))
    assert [r.choices[0].message.content for r in replies] == ["411"] * 4
    assert len({r.id for r in replies}) == 4


def test_stream_sends_steps_then_answer_usage_and_done(server: Server) -> None:
    chunks = list(client(server).chat.completions.create(
        model="debate-scripted", messages=[{"role": "user", "content": TASK}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "411"
    steps = [c.model_dump()["concilium"] for c in chunks
             if (c.model_dump().get("concilium") or {}).get("type") == "step"]
    assert [s["step"]["role"] for s in steps] == ["debater", "debater"]
    assert all("messages" not in s["step"] for s in steps)
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert finish[0].model_dump()["concilium"]["llm_calls"] == 2
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    # The steps arrive before the answer.
    first_content = next(i for i, c in enumerate(chunks) if c.choices
                         and c.choices[0].delta.content)
    assert all(chunks.index(c) < first_content for c in chunks
               if (c.model_dump().get("concilium") or {}).get("type") == "step")


def test_raw_stream_wire_format(server: Server) -> None:
    body = {"model": "arith", "stream": True, "messages": [{"role": "user", "content": TASK}]}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body,
                      timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert not any("usage" in p for p in payloads)  # not asked for


async def test_async_stream(server: Server) -> None:
    aclient = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    stream = await aclient.chat.completions.create(
        model="arith", messages=[{"role": "user", "content": TASK}], stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "411"


def test_unknown_team_is_openai_404(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": TASK}])
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert error["type"] == "not_found_error" and "gpt-4o" in error["message"]


@pytest.mark.parametrize(("option", "param"), [
    ({"n": 2}, "n"), ({"stop": ["\n"]}, "stop"), ({"logprobs": True}, "logprobs"),
    ({"temperature": 3}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"top_p": 0.5}, "top_p"),
])
def test_options_a_team_cannot_honour_are_a_clear_400(
        server: Server, option: dict[str, object], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(
            model="arith", messages=[{"role": "user", "content": TASK}], **option)  # type: ignore[call-overload]
    body = caught.value.body
    assert body["param"] == param and body["type"] == "invalid_request_error"
    assert body["message"].startswith(param)


def test_bad_messages_are_400(server: Server) -> None:
    for messages in ([], [{"role": "assistant", "content": "hi"}],
                     [{"role": "user", "content": "  "}],
                     [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]):
        response = httpx.post(f"{server.url}/v1/chat/completions",
                              json={"model": "arith", "messages": messages})
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    response = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


def test_options_map_onto_the_team(server: Server) -> None:
    """max_tokens lowers the run's token budget (never raises it); seed reaches the run;
    temperature is accepted; a budget stop is finish_reason 'length'."""
    r = client(server).chat.completions.create(
        model="gvr-scripted", messages=[{"role": "user", "content": TASK}], max_tokens=100,
        temperature=0.5, seed=7)
    ext = r.model_dump()["concilium"]
    assert ext["status"] == "stopped" and ext["stop_reason"].startswith("budget: token")
    assert r.choices[0].finish_reason == "length"
    assert ext["llm_calls"] < 8


def test_text_parts_are_the_task(server: Server) -> None:
    r = client(server).chat.completions.create(
        model="arith", messages=[{"role": "user", "content": [{"type": "text", "text": TASK}]}])
    assert r.choices[0].message.content == "411"


def test_langchain_chat_openai_uses_a_team_as_a_model(server: Server) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(model="arith", base_url=f"{server.url}/v1",
                                      api_key="unused", max_retries=0)
    assert llm.invoke(TASK).content == "411"
    assert "".join(str(c.content) for c in llm.stream(TASK)) == "411"
    reply = llm.invoke([("system", "be brief"), ("human", TASK)])
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] > 0


def _ledger(server: Server, run_id: str) -> tuple[str, int] | None:
    """The run's status and model-call count in the server's own ledger (its SQLite file)."""
    with sqlite3.connect(server.home / "home" / "concilium.db") as db:
        row = db.execute("SELECT status, (SELECT count(*) FROM steps WHERE run_id = runs.id)"
                         " FROM runs WHERE id = ?", (run_id,)).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def test_a_stream_client_that_leaves_cancels_its_run(server: Server) -> None:
    """gvr-scripted makes 8 calls of 0.3 s; the client reads the first step and closes:
    the run ends ``cancelled`` in the ledger and makes no more model calls."""
    body = {"model": "gvr-scripted", "stream": True,
            "messages": [{"role": "user", "content": TASK}]}
    with server.client() as http, http.stream("POST", "/v1/chat/completions",
                                              json=body) as response:
        assert response.status_code == 200
        chunks = (json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: "))
        run_id = next(chunks)["concilium"]["run_id"]
        # leave mid-run: once the first step (a model call) has streamed, after its
        # tokens (each role's text streams before its step)
        kinds = []
        while not kinds or kinds[-1] != "step":
            kinds.append(next(chunks)["concilium"]["type"])
        assert set(kinds) == {"delta", "step"}
    deadline = time.monotonic() + 30
    while (seen := _ledger(server, run_id)) is None or seen[0] == "running":
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    status, calls = seen
    assert status == "cancelled" and calls < 8
    # no call after the cancel: wait three model latencies, the count stays
    time.sleep(0.9)
    assert _ledger(server, run_id) == ("cancelled", calls)
    with server.client() as http:
        run = http.get(f"/runs/{run_id}").json()
    assert run["status"] == "cancelled" and not run["live"]
