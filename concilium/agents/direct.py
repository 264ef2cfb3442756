"""Model calls the door makes without litellm: our own providers, and OpenAI-compatible servers.

Why: ``import litellm`` is most of a CLI run's start (4-6 s of 6-8 s on our 2 cores)
and of its memory (~150 MB), and a call through it costs ~5 ms over the HTTP request
itself (issue #17). Two kinds of call need none of what it adds:

- ``scripted/`` and ``local/``: functions in this process (their ``areply``);
- an OpenAI-compatible server named by an ``api_base`` (vLLM, llama.cpp's server,
  a LiteLLM proxy, Ollama's ``/v1``) for ``openai/`` and ``hosted_vllm/`` models: one
  POST of the OpenAI wire format, over one pooled ``httpx`` client per event loop.

Everything else (hosted providers, ``faulty/``, ``openai/`` without an ``api_base``)
goes through litellm as before, and so does every call once litellm has callbacks set
(``litellm.callbacks``, ``success_callback``...): whoever configured logging there
sees every call. ``CONCILIUM_DIRECT=0`` sends every call through litellm.

Only :mod:`concilium.agents.llm` calls this module: it stays the one door to models.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["HTTPStatusError", "own_stream", "price_of", "route"]

HTTP_PROVIDERS = frozenset({"openai", "hosted_vllm"})
"""Providers whose ``api_base`` speaks the OpenAI chat-completions wire format."""
_ROUTING = ("api_base", "api_key", "extra_headers")

Call = Callable[
    [str, Sequence[dict[str, Any]], dict[str, Any], dict[str, Any], float],
    Awaitable[tuple[str, int, int]],
]


def route(model: str, params: dict[str, Any], *, stream: bool = False) -> Call | None:
    """How to make this call without litellm, or ``None`` to go through litellm.

    A streamed call to one of our own providers is made here too (:func:`own_stream`);
    a streamed call to an HTTP server goes through litellm, which reads its SSE.
    """
    if os.environ.get("CONCILIUM_DIRECT", "1").strip().lower() in {"0", "false", "no", "off"}:
        return None
    if "/" not in model or _litellm_hooked() or _callbacks_configured():
        return None
    provider = model.split("/", 1)[0]
    from concilium.agents.providers import OWN

    if provider in OWN and not params.get("api_base"):
        return _own
    if not stream and provider in HTTP_PROVIDERS and _base_url(provider, params):
        return _http
    return None


def _callbacks_configured() -> bool:
    """Whether LangSmith, Langfuse... are asked for (``CONCILIUM_LITELLM_CALLBACKS``): their
    loggers live in litellm, so every call goes through it."""
    from concilium import tracing

    return bool(tracing.litellm_callbacks())


async def own_stream(
    model: str,
    messages: Sequence[dict[str, Any]],
    params: dict[str, Any],
    metadata: dict[str, Any],
    relay: Any,
) -> tuple[str, int, int]:
    """A call to our own provider, streamed: each piece to ``relay``, then the whole
    reply and its usage, the same as the unstreamed call gives."""
    module, name, call_params = _own_call(model, params)
    relay.begin()
    text: list[str] = []
    prompt = completion = 0
    async for chunk in module.astream(name, list(messages), call_params, metadata):
        piece = chunk.get("text") or ""
        if piece:
            text.append(piece)
            await relay.send(piece, model)
        usage = chunk.get("usage")
        if usage:
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
    return "".join(text), prompt, completion


def _litellm_hooked() -> bool:
    """Whether litellm is loaded with callbacks that expect to see every call."""
    lm = sys.modules.get("litellm")
    if lm is None:
        return False
    return any(
        getattr(lm, name, None)
        for name in (
            "callbacks",
            "success_callback",
            "failure_callback",
            "input_callback",
            "_async_success_callback",
            "_async_failure_callback",
        )
    )


def _own_call(model: str, params: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """Our provider's module for ``model``, the model's name and the call's own params."""
    provider, name = model.split("/", 1)
    from concilium.agents.providers import OWN

    module = importlib.import_module(OWN[provider])
    return module, name, {k: v for k, v in params.items() if k not in _ROUTING}


async def _own(
    model: str,
    messages: Sequence[dict[str, Any]],
    params: dict[str, Any],
    metadata: dict[str, Any],
    timeout_s: float,
) -> tuple[str, int, int]:
    module, name, call_params = _own_call(model, params)
    return await module.areply(name, list(messages), call_params, metadata)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ OpenAI-compatible HTTP


class HTTPStatusError(Exception):
    """A server answered with an error status; ``status_code`` decides whether to retry."""

    def __init__(self, status_code: int, message: str, headers: Any = None) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.headers = headers
        retry_after = headers.get("retry-after") if headers is not None else None
        self.retry_after = retry_after


def _base_url(provider: str, params: dict[str, Any]) -> str | None:
    """The server's URL: the call's ``api_base``, else (``openai/``) the environment's.

    ``api.openai.com`` itself is left to litellm, which knows its models' quirks
    (parameters the o-series refuses, renamed limits).
    """
    base = params.get("api_base")
    if not base and provider == "openai":
        base = os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
    if not base or "api.openai.com" in str(base):
        return None
    return str(base).rstrip("/")


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _client() -> Any:
    """This event loop's HTTP client (its connections belong to the loop)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        import httpx

        client = _clients[loop] = httpx.AsyncClient(
            timeout=None,  # the door's own timeout (asyncio.timeout) cuts every try
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
    return client


async def _http(
    model: str,
    messages: Sequence[dict[str, Any]],
    params: dict[str, Any],
    metadata: dict[str, Any],
    timeout_s: float,
) -> tuple[str, int, int]:
    import httpx

    provider, name = model.split("/", 1)
    base = _base_url(provider, params)
    key = params.get("api_key")
    if key is None and not params.get("api_base"):  # the environment's server: its key
        key = os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key or 'no-key'}"}
    headers.update(params.get("extra_headers") or {})
    body: dict[str, Any] = {"model": name, "messages": list(messages)}
    body.update({k: v for k, v in params.items() if k not in _ROUTING and v is not None})
    try:
        response = await _client().post(f"{base}/chat/completions", json=body, headers=headers)
    except httpx.TimeoutException as error:
        raise TimeoutError(f"{type(error).__name__}: {error}") from error
    except httpx.TransportError as error:  # refused, reset, DNS: worth another try
        raise ConnectionError(f"{type(error).__name__}: {error}") from error
    if response.status_code >= 400:
        raise HTTPStatusError(response.status_code, _error_text(response), response.headers)
    try:
        data = response.json()
        content = data["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise HTTPStatusError(
            502, f"not an OpenAI chat completion: {response.text[:200]!r}"
        ) from None
    usage = data.get("usage") or {}
    return (
        content if isinstance(content, str) else "",
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )


def _error_text(response: Any) -> str:
    """The server's own error message (OpenAI's ``{"error": {"message": ...}}``), else its body."""
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return response.text[:500] or response.reason_phrase


# ------------------------------------------------------------------ prices


def price_of(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    registered: dict[str, tuple[float, float]],
) -> float:
    """What a direct call cost: a price registered with the door, else litellm's table.

    litellm's table is its packaged JSON file, read (once) without importing litellm;
    a model it does not list (most self-hosted ones) costs 0, as litellm would say.
    """
    if not (prompt_tokens or completion_tokens):
        return 0.0
    price = registered.get(model)
    if price is None:
        provider, _, name = model.partition("/")
        table = _price_table()
        entry = table.get(model)
        if entry is None and table.get(name, {}).get("litellm_provider") == provider:
            entry = table[name]
        if not entry:
            return 0.0
        price = (
            float(entry.get("input_cost_per_token") or 0.0),
            float(entry.get("output_cost_per_token") or 0.0),
        )
    return prompt_tokens * price[0] + completion_tokens * price[1]


def _price_table() -> dict[str, dict[str, Any]]:
    """litellm's live table when it is loaded (it holds what was registered there), else
    its packaged file."""
    lm = sys.modules.get("litellm")
    table = getattr(lm, "model_cost", None)
    return table if isinstance(table, dict) else _packaged_prices()


@cache
def _packaged_prices() -> dict[str, dict[str, Any]]:
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            try:
                return dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                break
    return {}
