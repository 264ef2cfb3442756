"""The one door to models: every role calls :func:`chat`, nothing else imports litellm.

Why one door: retries, timeouts, fallbacks, usage and cost accounting, the
test-time ban on real requests and (later) caching all live in one place, so a
role cannot forget any of them. litellm is imported lazily because importing it
costs seconds, and ``LITELLM_LOCAL_MODEL_COST_MAP`` is set first so it never
tries to download its price list.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from concilium import tracing
from concilium.agents import breaker
from concilium.agents.providers.base import record_provider_error, take_provider_error
from concilium.agents.streaming import Delta, DeltaSink, Relay, collect
from concilium.errors import ConciliumError, ModelError

if TYPE_CHECKING:
    from concilium.spec import TeamSpec

__all__ = [
    "DEFAULT_RETRY",
    "NO_KEY",
    "ChatResult",
    "Delta",
    "Endpoint",
    "ResponseCache",
    "RetryPolicy",
    "allow_only",
    "cache_key",
    "chat",
    "litellm_module",
    "record_provider_error",
    "register_price",
    "supports_json_schema",
    "supports_tools",
    "through_litellm",
    "warm_litellm",
]

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_litellm: Any = None
_call_ids = itertools.count(1)
_allowed_providers: frozenset[str] | None = None
_OWN = frozenset({"local", "scripted"})
"""Our in-process providers (:data:`concilium.agents.providers.OWN`)."""
_KNOWN = frozenset({"openai", "hosted_vllm", "ollama", "ollama_chat", "local", "scripted",
                    "faulty"})
"""Providers litellm routes (ours registered with it): no need to import it to ask."""
_prices: dict[str, tuple[float, float]] = {}
"""Prices given to :func:`register_price`: (per input token, per output token)."""
_callbacks: list[str] = []


@dataclass(frozen=True)
class RetryPolicy:
    """How one model call is retried. Only transient faults are retried."""

    attempts: int = 3
    """Tries per model, the first included."""
    initial_backoff_s: float = 0.5
    """Sleep before the second try; doubles each time."""
    max_backoff_s: float = 8.0
    """Upper bound of one sleep (a provider's Retry-After may ask for more, up to 60 s)."""
    jitter: float = 0.25
    """Random fraction added to each sleep so parallel callers do not retry in step."""
    timeout_s: float = 120.0
    """Wall-clock limit of one try."""


DEFAULT_RETRY = RetryPolicy()
NO_KEY = "no-key"
"""The key sent to an ``api_base`` given without one (keyless vLLM, llama.cpp, Ollama)."""


@dataclass(frozen=True)
class Endpoint:
    """A model and where to call it: its server, key and headers (``None``: litellm's default).

    A fallback given as an ``Endpoint`` is called there; one given as a plain model
    string is called where the primary model is.
    """

    model: str
    api_base: str | None = None
    """The server's URL (``http://host:8000/v1``); litellm's default for the provider if unset."""
    api_key: str | None = field(default=None, repr=False)
    """The key itself (read from the environment by the caller); never printed."""
    extra_headers: Mapping[str, str] | None = None
    """HTTP headers sent with each call."""

    def params(self) -> dict[str, Any]:
        """The litellm keyword arguments that route a call here.

        An ``api_base`` without a key gets :data:`NO_KEY`, not the provider's usual
        variable: litellm would otherwise send ``OPENAI_API_KEY`` to whatever server
        ``api_base`` names.
        """
        key = self.api_key if self.api_key is not None or self.api_base is None else NO_KEY
        found = {"api_base": self.api_base, "api_key": key,
                 "extra_headers": dict(self.extra_headers) if self.extra_headers else None}
        return {k: v for k, v in found.items() if v is not None}


@dataclass
class ChatResult:
    """What one model call produced, with what it cost."""

    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    attempts: int = 1
    fallback_used: bool = False
    cached: bool = False
    errors: list[str] = field(default_factory=list)
    replayed: bool = False
    """Answered from a resumed run's call journal: made (and paid for) before the crash."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Native function calls the model asked for: ``{id, name, arguments}``, ``arguments``
    the raw JSON text it sent (parsed, and its faults reported, by the tool loop)."""
    finish_reason: str | None = None
    first_token_ms: float | None = None
    """Streamed calls: milliseconds from the call to its first text (time to first token)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ResponseCache(Protocol):
    """Where :func:`chat` keeps replies, keyed by :func:`cache_key` (e.g. the Redis layer).

    A hit returns ``ChatResult(cached=True)`` with no model call, no tokens and no cost.
    ``get`` and ``put`` are coroutines that must not block the event loop (a cache on
    a network does its I/O off the loop) and should give up quickly: a cache that
    cannot answer is a miss, never a failed call.
    """

    def accepts(self, temperature: float) -> bool:
        """Whether replies sampled at ``temperature`` may be cached (usually only 0)."""
        ...

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, value: dict[str, Any]) -> None: ...


def cache_key(model: str, messages: Sequence[dict[str, str]], params: dict[str, Any]) -> str:
    """A stable key of everything that decides a reply: model, messages and parameters."""
    blob = json.dumps({"model": model, "messages": list(messages), "params": params},
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def litellm_module() -> Any:
    """Import litellm once, with the local price map and our providers registered."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        from concilium.agents.providers import custom_provider_map

        litellm.suppress_debug_info = True
        litellm.drop_params = True
        litellm.telemetry = False
        litellm.custom_provider_map = [*litellm.custom_provider_map, *custom_provider_map()]
        # litellm only reads custom_provider_map when a call is made; register now so the
        # first call is not the one paying for it.
        from litellm.utils import custom_llm_setup

        custom_llm_setup()
        # LangSmith, Langfuse, ...: litellm's own loggers (CONCILIUM_LITELLM_CALLBACKS).
        _callbacks[:] = tracing.litellm_callbacks()
        for name in _callbacks:
            for hooks in (litellm.success_callback, litellm.failure_callback):
                if name not in hooks:
                    hooks.append(name)
        _litellm = litellm
        for model, (per_input, per_output) in _prices.items():
            _register_in_litellm(model, per_input, per_output)
    return _litellm


def through_litellm(model: str, api_base: str | None = None) -> bool:
    """Whether a plain call to ``model`` (at ``api_base``) is made by litellm, as
    :func:`concilium.agents.direct.route` decides it (``False``: made without litellm)."""
    from concilium.agents import direct

    return direct.route(model, {"api_base": api_base} if api_base else {}) is None


def warm_litellm(specs: Iterable[TeamSpec]) -> bool:
    """Import litellm now if some call of these teams will go through it; ``True`` if so.

    Runners call this before their first item so that item's clock does not pay the
    import (seconds). Teams whose every model is ours (``scripted/``, ``local/``) or an
    OpenAI-compatible ``api_base`` called directly never touch litellm, and then neither
    does this: it would cost ~4 s and ~150 MB for nothing (issue #17).
    """
    from concilium.settings import get_settings

    default = get_settings().model
    if any(_needs_litellm(spec, default) for spec in specs):
        litellm_module()
        return True
    return False


def _needs_litellm(spec: TeamSpec, default: str) -> bool:
    """Whether a call of ``spec`` (its roles, their fallbacks, its inner teams, and the
    roles a strategy adds with the team's defaults) goes through litellm."""
    from concilium.spec import TeamSpec

    default = spec.model or default
    endpoints: list[tuple[str, str | None]] = [(default, spec.api_base)]
    for role in spec.roles.values():
        if role.tools and role.tool_protocol != "prompt":
            return True  # native tool calls (and litellm's table saying which) need it
        if isinstance(role.team, TeamSpec):
            if _needs_litellm(role.team, default):
                return True
        elif role.team is not None:
            return True  # a team not loaded yet: cannot tell, so warm it
        base = role.api_base if role.api_base is not None else spec.api_base
        endpoints.append((role.model or default, base))
        endpoints += [(f, base) if isinstance(f, str) else (f.model, f.api_base)
                      for f in role.fallbacks]
    return any(through_litellm(model, base) for model, base in endpoints)


def register_price(model: str, *, input_per_token: float, output_per_token: float) -> None:
    """Price a model litellm has no price for (a local or self-hosted one, a test model).

    Its calls then report a cost, and a team's ``max_cost`` budget applies to them.
    """
    _prices[model] = (input_per_token, output_per_token)
    if _litellm is not None:  # else registered when litellm is first imported
        _register_in_litellm(model, input_per_token, output_per_token)


def _register_in_litellm(model: str, input_per_token: float, output_per_token: float) -> None:
    _litellm.register_model({model: {
        "input_cost_per_token": input_per_token, "output_cost_per_token": output_per_token,
        "litellm_provider": model.split("/", 1)[0], "mode": "chat"}})


def supports_json_schema(model: str) -> bool:
    """Whether ``model`` accepts a JSON schema as ``response_format`` (structured output).

    Roles that parse a reply (critic, verifier) ask for a schema where it is honoured
    and fall back to explicit text markers elsewhere (the local and scripted models).
    litellm's table decides; a model it does not know gets markers, never an error.
    Our own providers are in that table only if someone registered them there, which
    takes litellm loaded: while it is not, they get markers without importing it.
    """
    if _litellm is None and "litellm" not in sys.modules and provider_of(model) in _OWN:
        return False
    try:
        return bool(litellm_module().supports_response_schema(model=model))
    except Exception:  # an unknown provider or model: no schema
        return False


def supports_tools(model: str) -> bool:
    """Whether ``model`` takes native function calling (``tools=``), by litellm's table.

    A model it does not know (the local and scripted ones, most self-hosted names) is
    offered tools through the prompt protocol instead (:mod:`concilium.agents.tool_loop`).
    """
    try:
        return bool(litellm_module().supports_function_calling(model=model))
    except Exception:  # an unknown provider or model: no native tools
        return False


@contextlib.contextmanager
def allow_only(*providers: str) -> Iterator[None]:
    """Refuse model calls to any provider not listed (tests use this to forbid the network).

    Example:
        ``with allow_only("scripted", "local"): ...``
    """
    global _allowed_providers
    previous = _allowed_providers
    _allowed_providers = frozenset(providers)
    try:
        yield
    finally:
        _allowed_providers = previous


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


def unknown_provider(model: str) -> str | None:
    """Why litellm would not know where to send ``model``, or ``None`` if it would.

    Checked before a run starts, so a typo such as ``olama/llama3`` is a configuration
    error naming the field, not a provider error after the first calls were paid for.
    """
    if "/" not in model:
        return None  # a bare name: litellm infers the provider (gpt-4o, claude-3-...)
    provider = model.split("/", 1)[0]
    if provider in _KNOWN:
        return None  # known without importing litellm (seconds at start-up)
    lm = litellm_module()
    known = {str(getattr(p, "value", p)) for p in lm.provider_list}
    known |= {str(entry["provider"]) for entry in lm.custom_provider_map}
    if provider in known:
        return None
    import difflib

    close = difflib.get_close_matches(provider, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see litellm's provider list"
    return f"unknown model provider {provider!r} in {model!r}; {hint}"


def _check_allowed(model: str) -> None:
    if _allowed_providers is not None and provider_of(model) not in _allowed_providers:
        raise ConciliumError(
            f"model {model!r} is not allowed here; allowed providers: "
            f"{', '.join(sorted(_allowed_providers))}"
        )


def _is_transient(error: BaseException) -> bool:
    """Connection faults, timeouts, rate limits and 5xx are worth another try; nothing else."""
    if isinstance(error, asyncio.TimeoutError | TimeoutError | ConnectionError):
        return True
    if isinstance(error, ConciliumError):
        return False
    lm = sys.modules.get("litellm")
    if lm is not None and hasattr(lm, "exceptions"):
        transient = (
            lm.exceptions.Timeout,
            lm.exceptions.RateLimitError,
            lm.exceptions.APIConnectionError,
            lm.exceptions.ServiceUnavailableError,
            lm.exceptions.InternalServerError,
            lm.exceptions.BadGatewayError,
        )
        if isinstance(error, transient):
            return True
    status = getattr(error, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def _retry_after_s(error: BaseException) -> float | None:
    """A provider's Retry-After, in seconds, if the error carries one."""
    value = getattr(error, "retry_after", None)
    if value is None:
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            with contextlib.suppress(Exception):
                value = headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _backoff_s(policy: RetryPolicy, attempt: int, error: BaseException) -> float:
    base = min(policy.max_backoff_s, policy.initial_backoff_s * (2 ** (attempt - 1)))
    after = _retry_after_s(error)
    if after is not None:
        base = min(60.0, max(base, after))
    return base * (1.0 + random.random() * policy.jitter)


def _usage_cost(lm: Any, response: Any) -> tuple[int, int, float]:
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = 0.0
    hidden = getattr(response, "_hidden_params", None) or {}
    if hidden.get("response_cost") is not None:
        cost = float(hidden["response_cost"])
    else:
        with contextlib.suppress(Exception):
            cost = float(lm.completion_cost(completion_response=response) or 0.0)
    return prompt, completion, cost


async def _one_call(
    model: str,
    messages: Sequence[dict[str, str]],
    params: dict[str, Any],
    metadata: dict[str, Any],
    policy: RetryPolicy,
    relay: Relay | None = None,
) -> tuple[str, int, int, float, list[dict[str, Any]], str | None]:
    """One try: ``(text, prompt tokens, completion tokens, cost, tool calls, finish reason)``;
    streamed to ``relay``.

    Our own providers and OpenAI-compatible servers are called directly
    (:mod:`concilium.agents.direct`; an HTTP server's stream goes through litellm);
    everything else, and any call offering ``tools`` (the direct client does not read
    tool calls back), goes through litellm.
    """
    from concilium.agents import direct

    call = (direct.route(model, params, stream=relay is not None)
            if not params.get("tools") else None)
    if call is not None:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as
        # the call completes, and a cancelled (Ctrl-C'd) run would then carry on.
        async with asyncio.timeout(policy.timeout_s):
            if relay is None:
                text, prompt, completion = await call(model, messages, params, metadata,
                                                      policy.timeout_s)
            else:
                text, prompt, completion = await direct.own_stream(
                    model, messages, params, metadata, relay)
        return (text, prompt, completion, direct.price_of(model, prompt, completion, _prices),
                [], None)
    lm = litellm_module()
    call_id = next(_call_ids)
    if relay is not None:  # the same usage comes back in the stream's last chunk
        params = {**params, "stream": True, "stream_options": {"include_usage": True}}
    try:
        async with asyncio.timeout(policy.timeout_s):
            response = await lm.acompletion(
                model=model,
                messages=list(messages),
                metadata={**tracing.callback_metadata(metadata, _callbacks),
                          "concilium_call_id": call_id},
                timeout=policy.timeout_s,
                num_retries=0,
                **params,
            )
            if relay is not None:  # read to its end inside the same time limit
                response = await collect(lm, response, messages, model, relay)
    except BaseException as error:
        original = take_provider_error(call_id)
        if original is not None and original is not error:
            raise original from None
        raise
    finally:
        take_provider_error(call_id)
    return (_content(response), *_usage_cost(lm, response), *_tool_calls(response))


@tracing.model_span
async def chat(
    messages: Sequence[dict[str, str]],
    *,
    model: str,
    temperature: float = 0.0,
    max_tokens: int = 256,
    seed: int | None = None,
    fallbacks: Sequence[str | Endpoint] = (),
    retry: RetryPolicy = DEFAULT_RETRY,
    metadata: dict[str, Any] | None = None,
    stop: Sequence[str] | None = None,
    cache: ResponseCache | None = None,
    response_format: dict[str, Any] | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    tools: Sequence[dict[str, Any]] | None = None,
    on_delta: DeltaSink | None = None,
) -> ChatResult:
    """Call a model through litellm with retries, a timeout per try and fallbacks.

    Args:
        messages: OpenAI-style chat messages.
        model: any litellm model string (``local/smollm2``, ``ollama/llama3.1``, ...).
        temperature: sampling temperature; 0 is greedy.
        max_tokens: completion limit.
        seed: sampling seed; independent samples must pass distinct seeds.
        fallbacks: models tried in order when ``model`` fails after its retries, or at
            once while ``model`` is cooling down (see :mod:`concilium.agents.breaker`); a
            model string is called where ``model`` is, an :class:`Endpoint` where it says.
        retry: the retry and timeout policy of each model.
        metadata: passed to the provider (the scripted provider reads ``role``).
        stop: stop sequences.
        cache: where replies are looked up first and stored after (only when
            ``cache.accepts(temperature)``); a hit makes no model call.
        response_format: structured output, e.g. a JSON schema; only for models where
            :func:`supports_json_schema` says so.
        api_base: the server of ``model`` (a vLLM, Ollama or proxy URL); default: litellm's.
        api_key: the key for that server; default: the provider's usual variable, or
            :data:`NO_KEY` when ``api_base`` is given.
        extra_headers: HTTP headers sent with each call to ``model``.
        tools: OpenAI-style function schemas offered for native function calling; the
            calls the model makes come back in ``ChatResult.tool_calls`` (the tool loop,
            :mod:`concilium.agents.tool_loop`, runs them).
        on_delta: stream the reply: called with each piece of text as it is generated
            (a :class:`Delta`; one marked ``restart`` voids the text before it, when a
            try fails midway and another starts). The result is the same as unstreamed.

    Returns:
        The reply text with usage, cost, latency and how many tries it took.

    Raises:
        ModelError: every model failed; the message lists each model's last error.
        ConciliumError: a non-transient fault of ours (bad script, missing extra).

    Example:
        ``r = await chat([{"role": "user", "content": "2+2?"}], model="local/smollm2")``
    """
    params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
    if seed is not None:
        params["seed"] = seed
    if stop:
        params["stop"] = list(stop)
    if response_format is not None:
        params["response_format"] = response_format
    if tools:
        params["tools"] = list(tools)
    primary = Endpoint(model, api_base, api_key, extra_headers)
    routes = [primary, *(f if isinstance(f, Endpoint) else
                         replace(primary, model=f) for f in fallbacks)]
    errors: list[str] = []
    attempts = 0
    relay = Relay(on_delta) if on_delta is not None else None
    start = time.perf_counter()
    key = None
    if cache is not None and cache.accepts(temperature):
        # Another server may serve another model under the same name: the server is part
        # of the key (the key is not: it decides who may ask, not what the reply is).
        where = {k: v for k, v in primary.params().items() if k != "api_key"}
        key = cache_key(model, messages, {**params, **where})
        hit = await cache.get(key)
        if hit is not None:
            if relay is not None:  # a reply from the cache arrives whole
                await relay.send(str(hit.get("text", "")), str(hit.get("model", model)))
            return ChatResult(text=str(hit.get("text", "")), model=str(hit.get("model", model)),
                              latency_ms=(time.perf_counter() - start) * 1000.0, attempts=0,
                              cached=True, tool_calls=list(hit.get("tool_calls") or []),
                              finish_reason=hit.get("finish_reason"))
    for index, route in enumerate(routes):
        candidate = route.model
        _check_allowed(candidate)
        # One breaker per server and model: the same name elsewhere is another deployment.
        name = candidate if route.api_base is None else f"{candidate}@{route.api_base}"
        for attempt in range(1, retry.attempts + 1):
            try:  # a model cooling down (breaker.py): skip to a fallback, or wait if none left
                async with breaker.guard(name, wait=index == len(routes) - 1,
                                         transient=_is_transient, retry_after=_retry_after_s):
                    attempts += 1
                    (text, prompt_tokens, completion_tokens, cost, calls,
                     finish) = await _one_call(candidate, messages,
                                               {**params, **route.params()}, metadata or {},
                                               retry, relay)
            except breaker.CircuitOpen as cooling:
                errors.append(f"{candidate}: CircuitOpen: {cooling}")
                if index < len(routes) - 1:
                    break  # a fallback answers while this model cools down
                continue  # the probe this call waited for failed: that try is spent
            except ConciliumError:
                raise
            except Exception as error:
                errors.append(f"{candidate}: {type(error).__name__}: {_short(error)}")
                if not _is_transient(error):
                    break  # a bug or a refusal: no point retrying this model
                if attempt < retry.attempts:
                    await asyncio.sleep(_backoff_s(retry, attempt, error))
                continue
            if key is not None and cache is not None and index == 0:
                await cache.put(key, {"text": text, "model": candidate,
                                      "prompt_tokens": prompt_tokens,
                                      "completion_tokens": completion_tokens, "cost": cost,
                                      **({"tool_calls": calls, "finish_reason": finish}
                                         if calls else {})})
            return ChatResult(
                text=text,
                model=candidate,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=cost,
                latency_ms=(time.perf_counter() - start) * 1000.0,
                attempts=attempts,
                fallback_used=index > 0,
                errors=errors,
                tool_calls=calls,
                finish_reason=finish,
                first_token_ms=None if relay is None or relay.first_at is None
                else (relay.first_at - start) * 1000.0,
            )
    raise ModelError("all models failed: " + " | ".join(errors[-4:]))  # already redacted


def _content(response: Any) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError):
        return ""
    return content if isinstance(content, str) else ""


def _tool_calls(response: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The function calls of a reply as plain data, and its finish reason.

    Nothing here rejects a malformed call: a missing id gets one, arguments that are
    not a string (some servers send an object) become JSON text, and the tool loop
    answers whatever is wrong with a tool message the model can read.
    """
    try:
        choice = response.choices[0]
    except (AttributeError, IndexError, TypeError):
        return [], None
    finish = getattr(choice, "finish_reason", None)
    raw = getattr(getattr(choice, "message", None), "tool_calls", None) or []
    calls: list[dict[str, Any]] = []
    for i, call in enumerate(raw):
        function = getattr(call, "function", None)
        if function is None and isinstance(call, dict):
            function = call.get("function")
        name = getattr(function, "name", None) if not isinstance(function, dict) else \
            function.get("name")
        arguments = getattr(function, "arguments", None) if not isinstance(function, dict) \
            else function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False, default=str)
        call_id = getattr(call, "id", None) if not isinstance(call, dict) else call.get("id")
        calls.append({"id": str(call_id or f"call_{i}"), "name": str(name or ""),
                      "arguments": arguments if arguments is not None else ""})
    return calls, str(finish) if finish is not None else None


def _short(error: BaseException, limit: int = 200) -> str:
    """One line of an error, with any API key or token in it masked."""
    from concilium.secrets import redact

    text = redact(" ".join(str(error).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
