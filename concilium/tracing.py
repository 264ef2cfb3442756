"""OpenTelemetry traces of runs: run -> graph node -> model call / tool call.

What a trace holds, with the GenAI semantic conventions where they name the thing:

- ``invoke_agent <team>``: one per run (the compiled graph's own invocation); at its
  end the run's totals (``gen_ai.usage.input_tokens`` / ``output_tokens``,
  ``concilium.cost_usd``, ``concilium.llm_calls``).
- ``node <name>``: one per LangGraph task, so each of a debate's parallel debaters is
  its own span; ``langgraph.node``, ``langgraph.step``.
- ``chat <model>``: one per call through the model door (retries and fallbacks
  inside it), with ``gen_ai.operation.name``, ``gen_ai.system``,
  ``gen_ai.request.model`` / ``temperature`` / ``max_tokens`` / ``seed``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
  ``concilium.cost_usd``, ``concilium.role``, ``concilium.node``, ``concilium.round``.
- ``execute_tool <name>``: a tool call (:func:`tool_span`, or a tool step of the
  ledger), with ``gen_ai.tool.name``.

When it is on: an application that installed an OpenTelemetry SDK tracer provider gets
our spans there (the usual contract of an instrumented library); with none installed
and ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, we install one that exports over OTLP/HTTP
(``pip install 'concilium[otel]'``), named by ``OTEL_SERVICE_NAME`` (default
``concilium``). Otherwise it is off: no span object is made, no callback is added to
the graph, and a call pays one check (``bench/tracing.py`` measures it). Without
``opentelemetry-api`` installed everything here still imports and is off.

Node spans come from a LangChain callback handler on the graph (``on_chain_start`` for
each task), the way LangGraph reports its tasks; model and tool spans find their node
span through the running task's config, so parents are right under ``Send`` fan-out
and across the threads LangGraph may use.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from uuid import UUID

try:  # the API alone is enough to make spans; without it tracing is simply off
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised by the "absent" test in a subprocess
    _trace = None  # type: ignore[assignment]

__all__ = [
    "NOOP_SPAN",
    "configure",
    "enabled",
    "model_span",
    "tool_span",
    "tracer",
    "with_tracing",
]

SCOPE = "concilium"
F = TypeVar("F", bound=Callable[..., Any])

_explicit: Any = None
"""A tracer provider given to :func:`configure` (tests, apps that keep theirs private)."""
_env_done = False
_env_lock = threading.Lock()
_tracers: dict[int, Any] = {}


class _NoSpan:
    """What :func:`tool_span` yields when tracing is off: accepts everything, keeps nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        pass

    def record_exception(self, exception: BaseException, **kwargs: Any) -> None:
        pass

    def is_recording(self) -> bool:
        return False


NOOP_SPAN = _NoSpan()


def configure(provider: Any = None) -> None:
    """Send concilium's spans to ``provider`` (an SDK ``TracerProvider``); ``None``: back
    to the default (the global provider, or OTLP from the environment).

    Example:
        ``provider = TracerProvider(); provider.add_span_processor(SimpleSpanProcessor(
        InMemorySpanExporter())); tracing.configure(provider)``
    """
    global _explicit
    _explicit = provider
    _tracers.clear()


def _from_environment() -> None:
    """Install an OTLP-exporting SDK provider once, when the environment asks for one."""
    global _env_done
    with _env_lock:
        if _env_done:
            return
        _env_done = True
        if not (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        ):
            return
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            warnings.warn(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is "
                "not installed; install it with: pip install 'concilium[otel]'",
                stacklevel=3,
            )
            return
        name = os.environ.get("OTEL_SERVICE_NAME") or "concilium"
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _trace.set_tracer_provider(provider)
        import atexit

        atexit.register(provider.shutdown)  # the batch in flight is sent before exit


def tracer() -> Any:
    """The tracer to use now, or ``None`` when tracing is off (the cheap, common case)."""
    if _trace is None:
        return None
    provider = _explicit
    if provider is None:
        provider = _trace.get_tracer_provider()
        if isinstance(provider, _trace.ProxyTracerProvider):
            if _env_done:
                return None
            _from_environment()
            provider = _trace.get_tracer_provider()
            if isinstance(provider, _trace.ProxyTracerProvider):
                return None
        if isinstance(provider, _trace.NoOpTracerProvider):
            return None
    found = _tracers.get(id(provider))
    if found is None:
        from concilium import __version__

        found = _tracers[id(provider)] = provider.get_tracer(SCOPE, __version__)
    return found


def enabled() -> bool:
    """Whether spans are being made."""
    return tracer() is not None


# ------------------------------------------------------------------ node spans


def _handler_class() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    class SpanHandler(BaseCallbackHandler):
        """Opens a span per graph run and per task (node) of it, from LangChain callbacks."""

        run_inline = True  # in the task's own thread and order: spans nest as they run
        raise_error = False

        def __init__(self, tracer: Any, context: Any) -> None:
            self.tracer = tracer
            self.context = context
            self.spans: dict[UUID, Any] = {}
            self.parents: dict[UUID, UUID | None] = {}
            self.root: UUID | None = None
            self.totals = {"input": 0, "output": 0, "cost": 0.0, "calls": 0}
            self._lock = threading.Lock()

        def span_of(self, run_id: UUID | None) -> Any:
            """The span of ``run_id``, or of its nearest ancestor that has one."""
            while run_id is not None:
                span = self.spans.get(run_id)
                if span is not None:
                    return span
                run_id = self.parents.get(run_id)
            return None

        def count(self, input_tokens: int, output_tokens: int, cost: float) -> None:
            with self._lock:
                self.totals["input"] += input_tokens
                self.totals["output"] += output_tokens
                self.totals["cost"] += cost
                self.totals["calls"] += 1

        def on_chain_start(
            self,
            serialized: Any,
            inputs: Any,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            tags: list[str] | None = None,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            self.parents[run_id] = parent_run_id
            if self.root is None:  # added at this graph's call: its first run is the graph
                self.root = run_id
                self.spans[run_id] = self._run_span()
                return
            if not any(t.startswith("graph:step:") for t in tags or ()) or str(
                (metadata or {}).get("langgraph_node", "")
            ).startswith("__"):
                return  # an edge function, a channel write: part of its node's span
            meta = metadata or {}
            node = str(meta.get("langgraph_node") or kwargs.get("name") or "node")
            parent = self.span_of(parent_run_id)
            ctx = _trace.set_span_in_context(parent) if parent is not None else None
            self.spans[run_id] = self.tracer.start_span(
                f"node {node}",
                context=ctx,
                kind=_trace.SpanKind.INTERNAL,
                attributes={
                    "langgraph.node": node,
                    "langgraph.step": int(meta.get("langgraph_step") or 0),
                    "concilium.node": node,
                    "concilium.run_id": self._run_id(),
                },
            )

        def _run_id(self) -> str:
            return str(getattr(self.context, "run_id", "") or "")

        def _run_span(self) -> Any:
            team = getattr(self.context, "team", None)
            name = str(getattr(team, "name", "") or "team")
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": name,
                "concilium.team": name,
                "concilium.run_id": self._run_id(),
            }
            strategy = getattr(getattr(team, "strategy", None), "name", None)
            if strategy:
                attributes["concilium.strategy"] = str(strategy)
            return self.tracer.start_span(
                f"invoke_agent {name}", attributes=attributes, kind=_trace.SpanKind.INTERNAL
            )

        def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id, None)

        def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id, error)

        def _end(self, run_id: UUID, error: BaseException | None) -> None:
            span = self.spans.pop(run_id, None)
            if span is None:
                self.parents.pop(run_id, None)
                return
            if run_id == self.root:
                totals = self.totals
                span.set_attributes(
                    {
                        "gen_ai.usage.input_tokens": totals["input"],
                        "gen_ai.usage.output_tokens": totals["output"],
                        "concilium.cost_usd": totals["cost"],
                        "concilium.llm_calls": totals["calls"],
                    }
                )
                self.parents.clear()
            if error is not None and not _is_interrupt(error):
                _fail(span, error)
            span.end()

    return SpanHandler


@functools.cache
def _span_handler_class() -> type:
    return _handler_class()


def _is_interrupt(error: BaseException) -> bool:
    """LangGraph's pause for a person (``GraphInterrupt``) is not a failure."""
    return type(error).__name__ in {"GraphInterrupt", "NodeInterrupt", "ParentCommand"}


def with_tracing(config: Any, context: Any) -> Any:
    """``config`` with the span handler added to its callbacks, when tracing is on.

    Called by the compiled team's ``stream``/``astream`` for each run; off, it
    returns ``config`` itself.
    """
    current = tracer()
    if current is None:
        return config
    config = dict(config or {})
    callbacks = config.get("callbacks")
    inherited = callbacks if isinstance(callbacks, list) else getattr(callbacks, "handlers", ())
    kind = _span_handler_class()
    if any(isinstance(h, kind) for h in inherited or ()):
        return config  # a team inside a traced team: its nodes nest in the outer trace
    handler = kind(current, context)
    if callbacks is None:
        config["callbacks"] = [handler]
    elif isinstance(callbacks, list):
        config["callbacks"] = [*callbacks, handler]
    else:  # a callback manager: a copy with our handler, inherited by every task
        manager = callbacks.copy()
        manager.add_handler(handler, inherit=True)
        config["callbacks"] = manager
    return config


def _node_scope() -> tuple[Any, Any]:
    """The span handler of the running graph and the running task's span (or Nones)."""
    try:
        from langgraph.config import get_config

        config = get_config()
    except (RuntimeError, ImportError):
        return None, None
    callbacks = config.get("callbacks")
    handlers: list[Any] = getattr(callbacks, "handlers", None) or []
    kind: Any = _span_handler_class()
    for handler in handlers:
        if isinstance(handler, kind):
            return handler, handler.span_of(getattr(callbacks, "parent_run_id", None))
    return None, None


# ------------------------------------------------------------------ model spans


def _fail(span: Any, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(error)
    span.set_attribute("error.type", type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, str(error)[:200]))


def _request_attributes(model: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    meta = kwargs.get("metadata") or {}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": provider,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.temperature": float(kwargs.get("temperature", 0.0)),
        "gen_ai.request.max_tokens": int(kwargs.get("max_tokens", 256)),
        "concilium.streamed": kwargs.get("on_delta") is not None,
    }
    if kwargs.get("seed") is not None:
        attributes["gen_ai.request.seed"] = int(kwargs["seed"])
    for key in ("role", "node", "run_id", "round", "sample"):
        value = meta.get(key)
        if isinstance(value, str | int | float | bool):
            attributes[f"concilium.{key}"] = value
    return attributes


def model_span(chat: F) -> F:
    """Wrap the model door so each call is a ``chat <model>`` span (off: one check).

    The span covers retries and fallbacks; its usage and cost are the call's, as the
    ledger records them, and they add up to the run's totals on the run span.
    """

    @functools.wraps(chat)
    async def traced(messages: Any, **kwargs: Any) -> Any:
        current = tracer()
        if current is None:
            return await chat(messages, **kwargs)
        model = str(kwargs.get("model"))
        handler, parent = _node_scope()
        ctx = _trace.set_span_in_context(parent) if parent is not None else None
        with current.start_as_current_span(
            f"chat {model}",
            context=ctx,
            kind=_trace.SpanKind.CLIENT,
            attributes=_request_attributes(model, kwargs),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await chat(messages, **kwargs)
            except BaseException as error:
                _fail(span, error)
                raise
            span.set_attributes(
                {
                    "gen_ai.response.model": result.model,
                    "gen_ai.usage.input_tokens": result.prompt_tokens,
                    "gen_ai.usage.output_tokens": result.completion_tokens,
                    "concilium.cost_usd": result.cost,
                    "concilium.attempts": result.attempts,
                    "concilium.cached": result.cached,
                    "concilium.fallback_used": result.fallback_used,
                }
            )
            if handler is not None and not result.cached:
                handler.count(result.prompt_tokens, result.completion_tokens, result.cost)
            return result

    return traced  # type: ignore[return-value]


# ------------------------------------------------------------------ litellm callbacks


def litellm_callbacks() -> list[str]:
    """The litellm callbacks named in ``CONCILIUM_LITELLM_CALLBACKS`` (e.g. ``langfuse``)."""
    from concilium.settings import get_settings

    return [n.strip() for n in get_settings().litellm_callbacks.split(",") if n.strip()]


def callback_metadata(metadata: dict[str, Any], callbacks: list[str]) -> dict[str, Any]:
    """The metadata litellm gets for a call: ours, in names its loggers do not misread.

    LangSmith's logger takes ``run_id`` for its own (UUID) run id, so ours travels as
    ``concilium_run_id``; with Langfuse, a run's calls share one trace (``trace_id``)
    and each is named for its node and round (``generation_name``), and with LangSmith
    each run is named so (``run_name``).
    """
    found = {k: v for k, v in metadata.items() if k != "run_id"}
    run_id = metadata.get("run_id")
    if run_id is not None:
        found["concilium_run_id"] = run_id
    name = metadata.get("node")
    if name is not None and metadata.get("round") is not None:
        name = f"{name} r{metadata['round']}"
    if "langfuse" in callbacks:
        if run_id is not None:
            found.setdefault("trace_id", f"concilium-{run_id}")
        if name is not None:
            found.setdefault("generation_name", name)
    if "langsmith" in callbacks and name is not None:
        found.setdefault("run_name", name)
    return found


# ------------------------------------------------------------------ tool spans

_open_tool: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "concilium_tool_span", default=None
)


@contextlib.contextmanager
def tool_span(
    name: str,
    *,
    call_id: str | None = None,
    node: str | None = None,
    role: str | None = None,
    round: int | None = None,
    arguments: str | None = None,
) -> Iterator[Any]:
    """A span around one tool call, a child of the running node's span.

    For the tool-calling loop: ``with tool_span("calculator", call_id=c.id) as span:
    result = run(c); span.set_attribute("concilium.output", result[:200])``. Off, it
    yields a span that keeps nothing. A ledger tool step made inside it annotates this
    span instead of adding another (see :func:`tool_step`).
    """
    current = tracer()
    if current is None:
        yield NOOP_SPAN
        return
    _, parent = _node_scope()
    ctx = _trace.set_span_in_context(parent) if parent is not None else None
    attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
    for key, value in (
        ("gen_ai.tool.call.id", call_id),
        ("concilium.node", node),
        ("concilium.role", role),
        ("concilium.round", round),
        ("gen_ai.tool.call.arguments", arguments),
    ):
        if value is not None:
            attributes[key] = value
    with current.start_as_current_span(
        f"execute_tool {name}",
        context=ctx,
        kind=_trace.SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        token = _open_tool.set(span)
        try:
            yield span
        except BaseException as error:
            _fail(span, error)
            raise
        finally:
            _open_tool.reset(token)


def tool_step(step: dict[str, Any]) -> None:
    """Trace a ledger tool step: annotate the open :func:`tool_span`, or add a span for
    it after the fact (its start is the step's time minus its latency)."""
    current = tracer()
    if current is None:
        return
    attributes = {
        "concilium.node": str(step.get("node", "")),
        "concilium.role": str(step.get("role", "")),
        "concilium.round": int(step.get("round", 0) or 0),
        "concilium.output": str(step.get("output", ""))[:500],
    }
    if step.get("answer") is not None:
        attributes["concilium.answer"] = str(step["answer"])
    open_span = _open_tool.get()
    if open_span is not None:
        open_span.set_attributes(attributes)
        return
    name = str(step.get("model") or "tool")
    _, parent = _node_scope()
    ctx = _trace.set_span_in_context(parent) if parent is not None else None
    end = time.time_ns()
    start = end - int(float(step.get("latency_ms", 0.0) or 0.0) * 1e6)
    span = current.start_span(
        f"execute_tool {name}",
        context=ctx,
        start_time=start,
        kind=_trace.SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            **attributes,
        },
    )
    span.end(end_time=end)
