"""What tracing costs per model call and per run: off, on with the SDK, on with OTLP export.

Measured side by side in one process with an instant scripted model, so only our own
code and OpenTelemetry's are timed:

- ``door, undecorated``: ``agents.llm.chat`` without its tracing wrapper (the floor);
- ``door, tracing off``: the real door, no tracer provider and no OTLP endpoint
  (what every user without tracing pays: one check per call);
- ``door, in-memory exporter``: SDK spans, kept in memory (span creation alone);
- ``door, OTLP exporter``: SDK spans batched and sent over OTLP/HTTP to a receiver this
  script starts (the real export path; sending happens on the SDK's thread);
- the same for a whole ``debate`` run (3 debaters x 2 rounds: a run span, node spans
  from the callback handler, 6 call spans), off vs OTLP.

Usage: ``python bench/tracing.py [--calls 400] [--runs 30]``. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


class _Sink(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def _interleaved(
    cases: list[tuple[str, Any, Callable[[], Awaitable[Any]]]],
    n: int,
    configure: Callable[[Any], None],
) -> list[tuple[str, list[float]]]:
    """Time each case ``n`` times, taking turns (ABCABC...), so a shared machine's drift
    lands on every case alike; each case runs with its own tracer provider."""
    samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for round_ in range(n + max(5, n // 20)):
        for name, provider, fn in cases:
            configure(provider)
            start = time.perf_counter()
            await fn()
            if round_ >= max(5, n // 20):  # the first rounds warm up
                samples[name].append(time.perf_counter() - start)
    configure(None)
    return [(name, samples[name]) for name, _, _ in cases]


async def _wrapper_only(n: int) -> tuple[float, float]:
    """The wrapper's own cost, tracing off: a decorated no-op coroutine vs the bare one."""
    from concilium import tracing

    async def bare(messages: Any, **kwargs: Any) -> None:
        return None

    wrapped = tracing.model_span(bare)
    timings = []
    for fn in (bare, wrapped, bare, wrapped):
        start = time.perf_counter()
        for _ in range(n):
            await fn(MESSAGES, model="scripted/bench")
        timings.append((time.perf_counter() - start) / n)
    return min(timings[0], timings[2]), min(timings[1], timings[3])


async def main(calls: int, runs: int) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from concilium import load_team, tracing
    from concilium.agents.llm import chat
    from concilium.agents.providers import scripted

    scripted.register("bench", scripted.Script(default="Answer: 4"))
    team = load_team(
        {
            "name": "bench",
            "model": "scripted/bench",
            "strategy": {"name": "debate", "rounds": 2, "debaters": 3, "stop_on_consensus": False},
            "roles": {"debater": {}},
        }
    )
    meta = {"role": "generator", "node": "generator", "round": 0}

    async def raw() -> None:
        await chat.__wrapped__(MESSAGES, model="scripted/bench", metadata=meta)

    async def door() -> None:
        await chat(MESSAGES, model="scripted/bench", metadata=meta)

    async def run() -> None:
        await team.arun("What is 2 + 2?", memory=False)

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    memory = TracerProvider()
    memory.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    otlp = TracerProvider()
    otlp.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver.server_port}/v1/traces")
        )
    )

    tracing.configure(None)
    assert tracing.tracer() is None, "tracing must be off for the baseline"
    rows = await _interleaved(
        [
            ("door, undecorated", None, raw),
            ("door, tracing off", None, door),
            ("door, in-memory exporter", memory, door),
            ("door, OTLP exporter", otlp, door),
        ],
        calls,
        tracing.configure,
    )
    rows += await _interleaved(
        [("debate run, tracing off", None, run), ("debate run, OTLP exporter", otlp, run)],
        runs,
        tracing.configure,
    )
    bare, wrapped = await _wrapper_only(100_000)
    otlp.force_flush()
    receiver.shutdown()

    floor = statistics.median(rows[0][1])
    print(f"{'case':<28} {'median µs':>10} {'mean µs':>10} {'vs floor':>9}")
    for name, samples in rows:
        median = statistics.median(samples)
        print(
            f"{name:<28} {median * 1e6:>10.0f} {statistics.mean(samples) * 1e6:>10.0f} "
            f"{median / floor:>8.2f}x"
        )
    off, on = statistics.median(rows[1][1]), statistics.median(rows[3][1])
    print(
        f"per call, tracing off: the wrapper costs {(wrapped - bare) * 1e6:.2f} µs "
        f"(decorated no-op {wrapped * 1e6:.2f} µs vs bare {bare * 1e6:.2f} µs); "
        f"whole door off vs undecorated: {(off - floor) * 1e6:+.0f} µs (noise)"
    )
    print(f"per call, OTLP on: +{(on - off) * 1e6:.0f} µs over off")
    run_off, run_on = statistics.median(rows[4][1]), statistics.median(rows[5][1])
    print(
        f"per debate run (6 calls, ~9 node tasks): OTLP on adds "
        f"{(run_on - run_off) * 1e3:.1f} ms ({run_on / run_off:.2f}x); "
        f"{_Sink.received} OTLP requests received"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.runs))
