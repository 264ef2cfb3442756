"""Routing each role to its own server: ``api_base``, ``api_key_env``, ``extra_headers``.

The servers are real OpenAI-compatible HTTP servers on 127.0.0.1 (stdlib
``http.server`` in a thread), so every call goes through litellm's real OpenAI
client, and each test asserts what arrived: the path, the Authorization header,
the extra headers and the model in the body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from concilium import TeamFileError, load_team
from concilium.agents.llm import NO_KEY, Endpoint, allow_only, chat
from concilium.cli.app import app
from concilium.team import RunFailed
from concilium.teams import FallbackSpec, spec_from_dict

TASK = "What is 6 * 7?"


@dataclass
class Seen:
    """One request a server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class ModelServer:
    """A minimal OpenAI-compatible server: fixed answers, per-model failures, a request log."""

    answer: str = "6 * 7 = 42.\nAnswer: 42"
    status: dict[str, int] = field(default_factory=dict)
    """HTTP status to answer for a model (default 200)."""
    hold: set[str] = field(default_factory=set)
    """Models whose requests are held until the server stops (to test timeouts)."""
    echo_auth: bool = False
    """Put the request's Authorization header in error bodies (as some servers do)."""
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.seen.append(Seen(self.path, {k.lower(): v for k, v in
                                                    self.headers.items()}, body))
                model = body.get("model", "")
                if model in server.hold:
                    server.release.wait(30)
                status = server.status.get(model, 200)
                if status != 200:
                    said = self.headers.get("Authorization", "") if server.echo_auth else ""
                    self.reply(status, {"error": {"message": f"no model {model} {said}",
                                                  "type": "invalid_request_error"}})
                    return
                self.reply(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": server.answer}}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                })

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def models(self) -> list[str]:
        return [s.body.get("model", "") for s in self.seen]


@pytest.fixture
def serve() -> Iterator[Callable[..., ModelServer]]:
    """Start model servers on free loopback ports; all stop at the end of the test."""
    started: list[tuple[ModelServer, ThreadingHTTPServer, threading.Thread]] = []

    def start(**options: Any) -> ModelServer:
        model_server = ModelServer(**options)
        http = ThreadingHTTPServer(("127.0.0.1", 0), model_server.handler())
        http.daemon_threads = True
        model_server.url = f"http://127.0.0.1:{http.server_address[1]}/v1"
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        started.append((model_server, http, thread))
        return model_server

    with allow_only("openai"):  # these tests call our loopback servers, nothing else
        yield start
    for model_server, http, thread in started:
        model_server.release.set()
        http.shutdown()
        http.server_close()
        thread.join(timeout=10)


def two_server_debate(a: ModelServer, b: ModelServer) -> dict[str, Any]:
    return {
        "name": "two-servers",
        "strategy": {"name": "debate", "rounds": 2, "stop_on_consensus": False},
        "answer": {"format": "number"},
        "retry": {"attempts": 1},
        "roles": {
            "vllm_box": {"role": "debater", "model": "openai/m1", "api_base": a.url,
                         "api_key_env": "GPU_BOX_A_AUTH",
                         "extra_headers": {"X-Route": "box-a"}},
            "ollama_box": {"role": "debater", "model": "openai/m2", "api_base": b.url,
                           "api_key_env": "BOX_B_PASSPHRASE_VAR",
                           "extra_headers": {"X-Route": "box-b", "X-Tenant": "t1"}},
        },
    }


KEY_A = "a-secret-value-0001"
KEY_B = "b-secret-value-0002"


async def test_each_debater_calls_its_own_server_with_its_own_key(
    serve: Callable[..., ModelServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = serve(), serve(answer="6 * 7 = 41.\nAnswer: 41")
    monkeypatch.setenv("GPU_BOX_A_AUTH", KEY_A)
    monkeypatch.setenv("BOX_B_PASSPHRASE_VAR", KEY_B)
    team_file = tmp_path / "team.yaml"
    team_file.write_text(yaml.safe_dump(two_server_debate(a, b)), encoding="utf-8")

    result = await load_team(team_file).arun(TASK)

    assert result.status == "ok"
    assert a.models() == ["m1", "m1"] and b.models() == ["m2", "m2"]  # 2 rounds each
    for seen in a.seen:
        assert seen.path == "/v1/chat/completions"
        assert seen.authorization == f"Bearer {KEY_A}"
        assert seen.headers["x-route"] == "box-a" and "x-tenant" not in seen.headers
    for seen in b.seen:
        assert seen.authorization == f"Bearer {KEY_B}"
        assert (seen.headers["x-route"], seen.headers["x-tenant"]) == ("box-b", "t1")
    by_node = {s["node"]: s["model"] for s in result.steps if s["kind"] == "llm"}
    assert by_node == {"vllm_box": "openai/m1", "ollama_box": "openai/m2"}
    # The team file names the variables; the keys are nowhere in it, nor in the ledger.
    text = team_file.read_text(encoding="utf-8")
    assert "GPU_BOX_A_AUTH" in text and KEY_A not in text and KEY_B not in text
    assert KEY_A not in result.model_dump_json() and KEY_B not in result.model_dump_json()


async def test_a_key_in_a_custom_named_variable_is_masked_in_errors_and_tasks(
    serve: Callable[..., ModelServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``*_KEY`` values were always masked; a key in ``BOX_A_AUTH`` must be too."""
    a = serve(status={"m1": 401}, echo_auth=True)
    monkeypatch.setenv("BOX_A_AUTH", KEY_A)
    spec = {"name": "masked", "strategy": "single", "retry": {"attempts": 1},
            "roles": {"generator": {"model": "openai/m1", "api_base": a.url,
                                    "api_key_env": "BOX_A_AUTH"}}}
    with pytest.raises(RunFailed) as caught:
        await load_team(spec).arun(f"Repeat {KEY_A} back, then: {TASK}")
    assert a.seen[0].authorization == f"Bearer {KEY_A}"  # the server did get the key ...
    sent = json.dumps(a.seen[0].body)
    assert KEY_A not in sent and "Repeat *** back" in sent  # ... not the task's copy of it
    assert "no model m1" in str(caught.value)  # the server's error came back ...
    assert KEY_A not in str(caught.value)  # ... with the key masked
    assert KEY_A not in caught.value.result.model_dump_json()


async def test_the_team_server_is_every_roles_default_and_keys_do_not_follow_a_role_away(
    serve: Callable[..., ModelServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, own = serve(), serve(answer="VERDICT: correct")
    monkeypatch.setenv("PROXY_TOKEN_VAR", KEY_A)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-real-openai-key-123456")
    spec = {"name": "proxied", "strategy": "gvr", "model": "openai/shared",
            "api_base": proxy.url, "api_key_env": "PROXY_TOKEN_VAR",
            "extra_headers": {"X-Team": "t"}, "limits": {"max_rounds": 1},
            "roles": {"generator": {},
                      "verifier": {"api_base": own.url, "model": "openai/judge"}}}
    await load_team(spec).arun(TASK)
    assert proxy.models() == ["shared"] and own.models() == ["judge"]
    assert proxy.seen[0].authorization == f"Bearer {KEY_A}"
    assert proxy.seen[0].headers["x-team"] == "t"
    # Its own server, no key named for it: neither the team's key nor OPENAI_API_KEY goes.
    assert own.seen[0].authorization == f"Bearer {NO_KEY}"
    assert "x-team" not in own.seen[0].headers


async def test_fallbacks_stay_on_the_roles_server_unless_they_name_their_own(
    serve: Callable[..., ModelServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = serve(status={"big": 404, "medium": 404}), serve()
    monkeypatch.setenv("BOX_B_CRED", KEY_B)
    spec = {"name": "fallbacks", "strategy": "single", "retry": {"attempts": 1},
            "roles": {"generator": {
                "model": "openai/big", "api_base": a.url, "extra_headers": {"X-Box": "a"},
                "fallbacks": ["openai/medium",
                              {"model": "openai/small", "api_base": b.url,
                               "api_key_env": "BOX_B_CRED"}]}}}
    result = await load_team(spec).arun(TASK)
    assert result.answer == "42"
    assert a.models() == ["big", "medium"]  # the string fallback: same server, same headers
    assert all(s.headers["x-box"] == "a" for s in a.seen)
    assert b.models() == ["small"]  # the mapping: its own server and key, no role headers
    assert b.seen[0].authorization == f"Bearer {KEY_B}" and "x-box" not in b.seen[0].headers
    step = result.steps[0]
    assert step["model"] == "openai/small" and step["fallback_used"] is True


async def test_a_missing_key_variable_stops_the_run_before_any_call(
    serve: Callable[..., ModelServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = serve(), serve()
    monkeypatch.setenv("GPU_BOX_A_AUTH", KEY_A)
    monkeypatch.delenv("BOX_B_PASSPHRASE_VAR", raising=False)
    team_file = tmp_path / "team.yaml"
    team_file.write_text(yaml.safe_dump(two_server_debate(a, b), sort_keys=False),
                         encoding="utf-8")
    with pytest.raises(TeamFileError) as caught:
        await load_team(team_file).arun(TASK)
    message = str(caught.value)
    assert message.startswith(f"{team_file}:")
    assert "roles.ollama_box.api_key_env: BOX_B_PASSPHRASE_VAR is not set" in message
    assert "role ollama_box" in message and "\n" not in message
    assert a.seen == [] and b.seen == []


def test_the_cli_names_the_missing_key_variable_in_one_line(
    serve: Callable[..., ModelServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = serve(), serve()
    monkeypatch.delenv("GPU_BOX_A_AUTH", raising=False)
    team_file = tmp_path / "team.yaml"
    team_file.write_text(yaml.safe_dump(two_server_debate(a, b), sort_keys=False),
                         encoding="utf-8")
    out = CliRunner().invoke(app, ["run", str(team_file), TASK, "--quiet"])
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "roles.vllm_box.api_key_env: GPU_BOX_A_AUTH is not set" in lines[0]
    assert a.seen == [] and b.seen == []


async def test_a_role_timeout_applies_to_its_calls(
    serve: Callable[..., ModelServer],
) -> None:
    a = serve(hold={"slow"})
    spec = {"name": "slow", "strategy": "single", "retry": {"attempts": 1, "timeout_s": 60},
            "roles": {"generator": {"model": "openai/slow", "api_base": a.url,
                                    "timeout_s": 0.3}}}
    with pytest.raises(RunFailed) as caught:
        await load_team(spec).arun(TASK)
    assert "Timeout" in str(caught.value)


class DictCache:
    """A real in-memory :class:`~concilium.agents.llm.ResponseCache`."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def accepts(self, temperature: float) -> bool:
        return temperature == 0.0

    async def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    async def put(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = value


async def test_the_response_cache_tells_servers_apart(
    serve: Callable[..., ModelServer],
) -> None:
    a, b = serve(answer="Answer: 1"), serve(answer="Answer: 2")
    cache = DictCache()
    messages = [{"role": "user", "content": TASK}]
    first = await chat(messages, model="openai/m", api_base=a.url, cache=cache)
    other = await chat(messages, model="openai/m", api_base=b.url, cache=cache)
    again = await chat(messages, model="openai/m", api_base=a.url, cache=cache)
    assert (first.text, other.text, again.text) == ("Answer: 1", "Answer: 2", "Answer: 1")
    assert (first.cached, other.cached, again.cached) == (False, False, True)
    assert len(a.seen) == 1 and len(b.seen) == 1


async def test_chat_takes_endpoints_as_fallbacks(serve: Callable[..., ModelServer]) -> None:
    a, b = serve(status={"m": 404}), serve()
    result = await chat([{"role": "user", "content": TASK}], model="openai/m", api_base=a.url,
                        api_key="k-1234567", fallbacks=[Endpoint("openai/n", b.url, "k-7654321")])
    assert result.model == "openai/n" and result.fallback_used
    assert b.seen[0].authorization == "Bearer k-7654321"
    assert "k-7654321" not in repr(Endpoint("openai/n", b.url, "k-7654321"))


# ------------------------------------------------------------------ team files


@pytest.mark.parametrize(("role", "field", "says"), [
    ({"api_key_env": "sk-proj-abcdefgh123456"}, "roles.generator.api_key_env",
     "the NAME of the variable"),
    ({"api_base": "http://user:hunter2@box:8000/v1"}, "roles.generator.api_base",
     "credentials in the URL"),
    ({"api_base": "box:8000"}, "roles.generator.api_base", "not an http(s) URL"),
    ({"extra_headers": {"Authorization": "Bearer abc"}}, "roles.generator.extra_headers",
     "name the variable that holds it in api_key_env"),
    ({"fallbacks": [{"modle": "openai/x"}]}, "roles.generator.fallbacks",
     "entry 0: unknown field 'modle'"),
    ({"fallbacks": [{"model": "openai/x", "api_key_env": "not a name"}]},
     "roles.generator.fallbacks", "entry 0: api_key_env: not an environment variable name"),
    ({"timeout_s": 0}, "roles.generator.timeout_s", "greater than 0"),
])
def test_routing_fields_are_checked_when_the_file_loads(role: dict[str, Any], field: str,
                                                        says: str) -> None:
    with pytest.raises(TeamFileError) as caught:
        spec_from_dict({"name": "x", "strategy": "single", "roles": {"generator": role}})
    assert caught.value.field == field and says in caught.value.message
    assert "hunter2" not in str(caught.value) and "sk-proj" not in str(caught.value)


def test_routing_fields_load_and_the_model_override_drops_them() -> None:
    spec = spec_from_dict({
        "name": "x", "strategy": "single", "api_base": "http://proxy:4000",
        "api_key_env": "PROXY_KEY",
        "roles": {"generator": {"model": "openai/m", "api_base": "https://box/v1",
                                "api_key_env": "BOX_KEY", "extra_headers": {"X-A": "1"},
                                "timeout_s": 30,
                                "fallbacks": ["openai/n", {"model": "ollama/llama3.1"}]}}})
    role = spec.roles["generator"]
    assert role.fallbacks == ["openai/n", FallbackSpec(model="ollama/llama3.1")]
    assert [name for _, _, name in spec.key_envs()] == ["PROXY_KEY", "BOX_KEY"]
    plain = spec.with_model("local/smollm2")
    assert (plain.api_base, plain.api_key_env) == (None, None)
    assert plain.roles["generator"].api_base is None
    assert plain.key_envs() == []


def test_schema_offers_the_routing_fields() -> None:
    from concilium.teams import team_json_schema

    schema = json.dumps(team_json_schema())
    for name in ("api_base", "api_key_env", "extra_headers", "timeout_s", "FallbackSpec"):
        assert name in schema
