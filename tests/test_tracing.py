"""OpenTelemetry traces: the span tree of real runs (the SDK's in-memory exporter), OTLP
export from a real ``concilium run`` process to a receiver the test starts, and tracing
off (no SDK configured, or no ``opentelemetry`` at all)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from concilium import tracing
from concilium.agents.providers import scripted
from concilium.team import load_team

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    try:
        yield exporter
    finally:
        tracing.configure(None)
        provider.shutdown()


def children(all_spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        s for s in all_spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


async def test_debate_span_tree(spans: InMemorySpanExporter) -> None:
    """One run span; one node span per debater task, each with exactly its own model
    call inside; token counts that add up to the run's usage."""
    script = scripted.Script(
        replies={
            "debater_1": ["I say 41.\nAnswer: 41", "Fine, 42.\nAnswer: 42"],
            "debater_2": ["Answer: 42", "Still 42.\nAnswer: 42"],
            "debater_3": ["It is 42.\nAnswer: 42", "Answer: 42"],
        }
    )
    team = load_team(
        {
            "name": "traced",
            "model": "scripted/trace",
            "strategy": {"name": "debate", "rounds": 2, "debaters": 3},
            "roles": {"debater": {}},
        }
    )
    with scripted.use("trace", script):
        result = await team.arun("What is 6 times 7?", memory=False)
    found = spans.get_finished_spans()
    roots = [s for s in found if s.parent is None]
    assert [s.name for s in roots] == ["invoke_agent traced"]
    run = roots[0]
    assert run.attributes["concilium.run_id"] == result.run_id
    assert run.attributes["concilium.strategy"] == "debate"
    nodes = children(found, run)
    debaters = [n for n in nodes if n.name == "node debater"]
    assert len(debaters) == 6 == result.usage.llm_calls  # 3 debaters x 2 rounds
    calls = []
    for node in debaters:
        inside = children(found, node)
        assert [c.name for c in inside] == ["chat scripted/trace"]
        calls.append(inside[0])
    chats = [s for s in found if s.name.startswith("chat ")]
    assert sorted(chats, key=id) == sorted(calls, key=id)  # no call span anywhere else
    assert {(c.attributes["concilium.node"], c.attributes["concilium.round"]) for c in calls} == {
        (f"debater_{i}", r) for i in (1, 2, 3) for r in (0, 1)
    }
    for call in calls:
        attrs = call.attributes
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.system"] == "scripted"
        assert attrs["gen_ai.request.model"] == "scripted/trace"
        assert attrs["concilium.role"] == "debater"
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    # the calls' own spans end before their node's span, which ends before the run's
    assert all(
        c.end_time <= n.end_time <= run.end_time for c, n in zip(calls, debaters, strict=True)
    )
    usage = result.usage
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in calls) == usage.prompt_tokens
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in calls) == usage.completion_tokens
    assert run.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert run.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert run.attributes["concilium.llm_calls"] == usage.llm_calls


async def test_tool_step_is_a_span_in_its_node(spans: InMemorySpanExporter) -> None:
    team = load_team(
        {
            "name": "checked",
            "model": "scripted/tool",
            "strategy": "gvr",
            "answer": {"format": "number"},
            "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}},
        }
    )
    with scripted.use("tool", scripted.Script(default="17 * 24 + 3 = 411\nAnswer: 411")):
        result = await team.arun("What is 17 * 24 + 3?", memory=False)
    assert result.usage.tool_calls == 1
    found = spans.get_finished_spans()
    tools = [s for s in found if s.name.startswith("execute_tool ")]
    assert len(tools) == 1
    tool = tools[0]
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["concilium.role"] == "verifier"
    parent = next(s for s in found if s.context.span_id == tool.parent.span_id)
    assert parent.name == "node verifier"
    assert tool.start_time < tool.end_time


def test_tool_span_helper(spans: InMemorySpanExporter) -> None:
    with tracing.tool_span("calculator", call_id="call_1", arguments='{"x": "2+2"}') as span:
        span.set_attribute("concilium.output", "4")
    with pytest.raises(ZeroDivisionError), tracing.tool_span("calculator"):
        1 / 0  # noqa: B018
    ok, failed = spans.get_finished_spans()
    assert ok.name == "execute_tool calculator"
    assert ok.attributes["gen_ai.tool.call.id"] == "call_1"
    assert ok.attributes["concilium.output"] == "4"
    assert failed.attributes["error.type"] == "ZeroDivisionError"
    assert not failed.status.is_ok


async def test_a_failed_call_is_an_error_span(spans: InMemorySpanExporter) -> None:
    from concilium.agents.llm import chat
    from concilium.errors import ScriptExhausted

    with scripted.use("empty", scripted.Script()), pytest.raises(ScriptExhausted):
        await chat([{"role": "user", "content": "hi"}], model="scripted/empty")
    (span,) = spans.get_finished_spans()
    assert span.name == "chat scripted/empty"
    assert span.attributes["error.type"] == "ScriptExhausted"


async def test_off_makes_no_spans_and_adds_no_callback() -> None:
    assert tracing.tracer() is None  # no SDK configured in this process, no OTLP endpoint
    config = {"recursion_limit": 5}
    assert tracing.with_tracing(config, None) is config
    with tracing.tool_span("calculator") as span:
        assert span is tracing.NOOP_SPAN and not span.is_recording()


def test_runs_without_opentelemetry_installed(tmp_path: Path) -> None:
    """``opentelemetry`` made unimportable: concilium imports, runs and streams."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from concilium import tracing\n"
        "assert tracing.tracer() is None and not tracing.enabled()\n"
        "from concilium.agents.providers import scripted\n"
        "from concilium.team import load_team\n"
        "scripted.register('s', scripted.Script(default='Answer: 7'))\n"
        "team = load_team({'name': 'n', 'strategy': 'single', 'model': 'scripted/s',"
        " 'roles': {'generator': {}}})\n"
        "seen = []\n"
        "result = team.run('3 + 4?', memory=False, on_delta=seen.append)\n"
        "print(result.answer, len(seen))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7", "2"]


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_otlp_export_from_a_cli_run(tmp_path: Path) -> None:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` set: a real ``concilium run`` sends its spans there."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    _Receiver.bodies = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "otlp.yaml").write_text(json.dumps({"default": "6 * 7 = 42\nAnswer: 42"}))
    team = tmp_path / "team.yaml"
    team.write_text(
        json.dumps(
            {
                "name": "exported",
                "strategy": "single",
                "model": "scripted/otlp",
                "roles": {"generator": {}},
            }
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CONCILIUM_HOME": str(tmp_path / "home"),
        "CONCILIUM_SCRIPTS_DIR": str(scripts),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
        "OTEL_SERVICE_NAME": "concilium-test",
    }
    code = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, "run", str(team), "6 times 7?"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
    finally:
        receiver.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Answer: 42")
    names: dict[str, dict[str, Any]] = {}
    services = set()
    for path, body in _Receiver.bodies:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            services |= {
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            }
            for scope in resource.scope_spans:
                for span in scope.spans:
                    names[span.name] = {a.key: a.value for a in span.attributes}
    assert services == {"concilium-test"}
    assert {"invoke_agent exported", "node generator", "chat scripted/otlp"} <= set(names)
    call = names["chat scripted/otlp"]
    assert call["gen_ai.usage.output_tokens"].int_value > 0
    assert call["concilium.role"].string_value == "generator"


def test_litellm_callback_metadata() -> None:
    meta = {"role": "debater", "node": "debater_2", "run_id": "abc123", "round": 1}
    plain = tracing.callback_metadata(meta, [])
    assert "run_id" not in plain and plain["concilium_run_id"] == "abc123"
    fuse = tracing.callback_metadata(meta, ["langfuse"])
    assert fuse["trace_id"] == "concilium-abc123"
    assert fuse["generation_name"] == "debater_2 r1"
    assert tracing.callback_metadata(meta, ["langsmith"])["run_name"] == "debater_2 r1"
