"""``faulty/<name>``: wraps another model and injects the faults real providers have.

Timeouts, rate limits (429 with ``Retry-After``), server errors (5xx), malformed
and empty replies, each at a configured rate, decided by a seeded RNG so a test
sees the same faults every run. The replies that get through come from the
wrapped model (usually ``scripted/<name>``), so the retry, fallback and parsing
paths are exercised end to end through litellm.

Example:
    >>> faulty.configure("flaky", Faults(inner="scripted/demo", rate_limit=0.2, server_error=0.1))
    >>> # then use model "faulty/flaky" in a team
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from litellm import CustomLLM

from concilium.agents.providers.base import (
    call_metadata,
    fill_response,
    record_provider_error,
    rough_tokens,
)
from concilium.errors import ConfigError

__all__ = ["Faults", "FaultyProvider", "configure"]

MALFORMED = "<|im_start|>##!! ?? \ufffd\ufffd"


@dataclass
class Faults:
    """Fault rates (each a probability per call) around the ``inner`` model."""

    inner: str
    timeout: float = 0.0
    rate_limit: float = 0.0
    server_error: float = 0.0
    malformed: float = 0.0
    empty: float = 0.0
    retry_after_s: float = 0.01
    """What the 429s ask callers to wait."""
    hang_s: float = 30.0
    """How long a "timeout" fault hangs (the caller's timeout should fire first)."""
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """Which fault this call gets, if any."""
        with self._lock:
            roll = self._rng.random()
        edge = 0.0
        for name in ("timeout", "rate_limit", "server_error", "malformed", "empty"):
            edge += getattr(self, name)
            if roll < edge:
                with self._lock:
                    self.injected[name] += 1
                return name
        return None


_profiles: dict[str, Faults] = {}


def configure(name: str, faults: Faults) -> Faults:
    """Make ``faulty/<name>`` inject ``faults``."""
    _profiles[name] = faults
    return faults


def _error(kind: str, faults: Faults, model: str) -> Exception:
    import httpx
    import litellm

    request = httpx.Request("POST", "http://faulty.invalid/v1/chat/completions")
    if kind == "rate_limit":
        response = httpx.Response(
            429, headers={"retry-after": str(faults.retry_after_s)}, request=request
        )
        return litellm.exceptions.RateLimitError(
            "injected rate limit", llm_provider="faulty", model=model, response=response
        )
    response = httpx.Response(503, request=request)
    return litellm.exceptions.ServiceUnavailableError(
        "injected server error", llm_provider="faulty", model=model, response=response
    )


class FaultyProvider(CustomLLM):
    """The litellm side of ``faulty/<name>``."""

    async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response,
                          print_verbose, encoding, api_key, logging_obj, optional_params,
                          acompletion=None, litellm_params=None, logger_fn=None, headers=None,
                          timeout=None, client=None):  # type: ignore[override]
        meta = call_metadata(litellm_params)
        call_id = meta.pop("concilium_call_id", None)
        try:
            faults = _profiles.get(model)
            if faults is None:
                raise ConfigError(f"no fault profile named {model!r}; call faulty.configure()")
            kind = faults.draw()
            if kind == "timeout":
                await asyncio.sleep(faults.hang_s)
            if kind in ("rate_limit", "server_error"):
                raise _error(kind, faults, model)
            if kind in ("malformed", "empty"):
                text = MALFORMED if kind == "malformed" else ""
                return fill_response(model_response, model=f"faulty/{model}", text=text,
                                     prompt_tokens=rough_tokens(str(messages)),
                                     completion_tokens=rough_tokens(text))
            return await _delegate(faults.inner, messages, optional_params, meta)
        except Exception as error:
            record_provider_error(call_id, error)
            raise


async def _delegate(inner: str, messages: list, optional_params: dict, meta: dict) -> Any:
    import litellm

    params = {k: v for k, v in optional_params.items() if k != "max_retries"}
    return await litellm.acompletion(
        model=inner, messages=messages, metadata=meta, num_retries=0, **params
    )
