"""Token streaming at the model door: a streamed reply, read into the same result.

:func:`concilium.agents.llm.chat` streams when given ``on_delta``: it asks litellm for
``stream=True`` with ``stream_options={"include_usage": True}``, hands each piece of
text to ``on_delta`` as it arrives, and rebuilds the whole response with litellm's
``stream_chunk_builder``, so usage, cost, the cache and the ledger see exactly what an
unstreamed call gives them (the providers send the same usage in their last chunk).

Above the door, :func:`langchain_messages` turns a call's deltas into LangChain
chat-model callbacks, which is how LangGraph's ``stream_mode="messages"`` learns of
tokens from a model that is not a LangChain chat model: its ``StreamMessagesHandler``
listens for ``on_chat_model_start`` / ``on_llm_new_token`` / ``on_llm_end`` on the
node's callback manager (LangGraph's custom stream mode is the other way; the run
context publishes deltas there too).
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Delta", "DeltaSink", "Relay", "collect", "langchain_messages"]


@dataclass(frozen=True)
class Delta:
    """A piece of a reply, as it is generated."""

    text: str
    """The new text (may be empty on a ``restart``)."""
    model: str
    """The model generating it (a fallback's name after a failover)."""
    restart: bool = False
    """Text shown so far for this call is void: a retry or a fallback starts over."""


DeltaSink = Callable[[Delta], Awaitable[None] | None]
"""Where a call's deltas go: a function, or a coroutine function (awaited in order)."""


@dataclass
class Relay:
    """Forwards one call's deltas, marking the first one after a failed try as a restart."""

    sink: DeltaSink
    shown: bool = False
    restart: bool = False
    first_at: float | None = None
    """``time.perf_counter()`` of the first text (time to first token)."""

    def begin(self) -> None:
        """A new try starts: anything shown by an earlier try is void."""
        if self.shown:
            self.restart = True

    async def send(self, text: str, model: str) -> None:
        if not text and not self.restart:
            return
        if text and self.first_at is None:
            self.first_at = time.perf_counter()
        delta = Delta(text, model, self.restart)
        self.restart = False
        self.shown = self.shown or bool(text)
        done = self.sink(delta)
        if inspect.isawaitable(done):
            await done


async def collect(
    lm: Any, stream: Any, messages: Sequence[dict[str, Any]], model: str, relay: Relay
) -> Any:
    """Read litellm's stream to its end, relaying text; the whole ``ModelResponse``."""
    relay.begin()
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        choices = getattr(chunk, "choices", None) or []
        if choices:
            text = getattr(choices[0].delta, "content", None)
            if isinstance(text, str) and text:
                await relay.send(text, model)
    return lm.stream_chunk_builder(chunks, messages=list(messages))


@dataclass
class _LangChainCall:
    """One model call as a LangChain chat-model run (see :func:`langchain_messages`)."""

    manager: Any
    id: str = field(default_factory=lambda: f"run-{uuid.uuid4()}")
    text: list[str] = field(default_factory=list)

    def wants_tokens(self) -> bool:
        """Whether a handler streams tokens (LangChain's own rule for chat models: a
        ``_StreamingCallbackHandler``, such as LangGraph's for ``stream_mode="messages"``)."""
        try:
            from langchain_core.tracers._streaming import _StreamingCallbackHandler
        except ImportError:  # moved: fall back to the handler LangGraph uses
            return any(type(h).__name__ == "StreamMessagesHandler" for h in self.manager.handlers)
        return any(isinstance(h, _StreamingCallbackHandler) for h in self.manager.handlers)

    async def token(self, delta: Delta) -> None:
        from langchain_core.messages import AIMessageChunk
        from langchain_core.outputs import ChatGenerationChunk

        if delta.restart:
            self.text.clear()
        if not delta.text:
            return
        self.text.append(delta.text)
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta.text, id=self.id))
        await self.manager.on_llm_new_token(delta.text, chunk=chunk)

    async def end(self, text: str, usage: dict[str, int] | None = None) -> None:
        from langchain_core.messages import AIMessage
        from langchain_core.outputs import ChatGeneration, LLMResult

        message = AIMessage(content=text, id=self.id, usage_metadata=usage)  # type: ignore[arg-type]
        await self.manager.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))

    async def error(self, error: BaseException) -> None:
        await self.manager.on_llm_error(error)


async def langchain_messages(
    messages: Sequence[dict[str, Any]], *, model: str, metadata: dict[str, Any]
) -> _LangChainCall | None:
    """Start a LangChain chat-model run for this call on the running node's callbacks.

    ``None`` outside a LangGraph run or when the node has no callback handlers (the
    common case: then nothing is paid). With handlers (``stream_mode="messages"``,
    LangSmith's tracer, a user's own), the call shows to them as a chat model would.
    """
    try:
        from langgraph.config import get_config

        config = get_config()
    except (RuntimeError, ImportError):
        return None
    callbacks = config.get("callbacks")
    if not getattr(callbacks, "handlers", None):
        return None
    from langchain_core.messages import convert_to_messages
    from langchain_core.runnables.config import get_async_callback_manager_for_config

    manager = get_async_callback_manager_for_config(config)
    manager.add_metadata(
        {
            "ls_provider": model.split("/", 1)[0],
            "ls_model_name": model,
            "concilium_role": metadata.get("role"),
            "concilium_round": metadata.get("round"),
        },
        inherit=False,
    )
    managers = await manager.on_chat_model_start(
        {"name": "concilium", "id": ["concilium", "agents", "llm", "chat"]},
        [convert_to_messages([dict(m) for m in messages])],
        invocation_params={"model": model},
        name=str(metadata.get("node") or "chat"),
    )
    return _LangChainCall(managers[0])
