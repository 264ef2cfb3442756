"""What our custom providers share: reading litellm's arguments, building its response."""

from __future__ import annotations

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
