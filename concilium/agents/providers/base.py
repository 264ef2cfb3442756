"""What our custom providers share: reading litellm's arguments, building its response."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


def call_metadata(litellm_params: dict[str, Any] | None) -> dict[str, Any]:
    """The ``metadata`` dict that ``agents.llm.chat`` passed along."""
    return dict((litellm_params or {}).get("metadata") or {})


def fill_response(
    model_response: Any, *, model: str, text: str, prompt_tokens: int, completion_tokens: int
) -> Any:
    """Put text and usage into litellm's pre-made ``ModelResponse``."""
    from litellm.types.utils import Usage

    model_response.choices[0].message.content = text
    model_response.choices[0].finish_reason = "stop"
    model_response.model = model
    model_response.usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
    return model_response


def rough_tokens(text: str) -> int:
    """A stable token estimate (~4 characters a token) for providers without a tokenizer."""
    return max(1, (len(text) + 3) // 4) if text else 0


def pieces(text: str) -> list[str]:
    """``text`` cut into word-sized pieces (each word with the spaces after it), in order.

    Providers without a tokenizer stream these; joined they give ``text`` back exactly.
    """
    return re.findall(r"\S+\s*|\s+", text)


def stream_chunk(text: str, *, index: int = 0) -> dict[str, Any]:
    """One litellm ``GenericStreamingChunk`` carrying ``text`` (not the last one)."""
    return {"text": text, "is_finished": False, "finish_reason": "", "usage": None,
            "index": index, "tool_use": None}


def last_chunk(prompt_tokens: int, completion_tokens: int, finish: str = "stop"
               ) -> dict[str, Any]:
    """The closing chunk: no text, the finish reason and the call's usage.

    litellm passes the usage on as the stream's final ``usage`` when the caller asked
    for it (``stream_options={"include_usage": True}``), so a streamed call is charged
    exactly what the same call unstreamed is.
    """
    return {"text": "", "is_finished": True, "finish_reason": finish, "index": 0,
            "tool_use": None,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def generic_chunks(text: str, prompt_tokens: int, completion_tokens: int
                   ) -> Iterator[dict[str, Any]]:
    """A whole reply as a stream: its pieces, then :func:`last_chunk`."""
    for piece in pieces(text):
        yield stream_chunk(piece)
    yield last_chunk(prompt_tokens, completion_tokens)
