"""In-process model providers: ``local`` (llama.cpp), ``scripted`` (tests), ``faulty``.

``local/<name>`` runs a GGUF model with llama.cpp in this process; ``scripted/<name>``
replies from a deterministic script for tests; ``faulty/<name>`` wraps another model and
injects timeouts, 429s, 5xx and malformed or empty replies. All are reached through
``agents.llm.chat`` like any hosted model, so the same code path is tested.

``local`` and ``scripted`` are plain functions (``areply``/``reply``) that the model
door calls directly, so a run on them never imports litellm (seconds of start-up);
they are also registered with litellm (:func:`custom_provider_map`) for code that
calls ``litellm.acompletion`` itself, and for ``faulty`` to wrap.

A new in-process provider: a module here (``areply``/``reply``, or a litellm
``CustomLLM``; ``base.py`` reads litellm's arguments, fills its response and reports
your exceptions), named in :data:`OWN` or :func:`custom_provider_map`. Providers sit
below the model door: they never import ``agents/llm.py``. A hosted model needs no
code: any litellm model string works.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["OWN", "custom_provider_map"]

OWN = {
    "local": "concilium.agents.providers.local",
    "scripted": "concilium.agents.providers.scripted",
}
"""Providers answered in this process without litellm: prefix -> module with ``areply``."""


def custom_provider_map() -> list[Any]:
    """The entries for ``litellm.custom_provider_map`` (imports litellm)."""
    from concilium.agents.providers.faulty import FaultyProvider

    adapter = _adapter_class()
    return [
        {"provider": "local", "custom_handler": adapter("local")},
        {"provider": "scripted", "custom_handler": adapter("scripted")},
        {"provider": "faulty", "custom_handler": FaultyProvider()},
    ]


def _adapter_class() -> type:
    """litellm's side of an :data:`OWN` provider (a ``CustomLLM``; made here, when litellm
    is imported anyway)."""
    from litellm import CustomLLM

    from concilium.agents.providers.base import (
        call_metadata,
        fill_response,
        generic_chunks,
        record_provider_error,
    )

    @contextmanager
    def recorded(meta: dict[str, Any]) -> Iterator[None]:
        """A provider's error, noted under the call's id before litellm wraps it (so the
        retry policy and the ledger see what the provider raised, not litellm's wrapper)."""
        try:
            yield
        except Exception as error:
            record_provider_error(meta.get("concilium_call_id"), error)
            raise

    class OwnProvider(CustomLLM):  # type: ignore[misc]
        """``<prefix>/<model>`` through litellm: the provider module's ``areply``/``reply``."""

        def __init__(self, prefix: str) -> None:
            super().__init__()
            self.prefix = prefix
            self.module = importlib.import_module(OWN[prefix])

        def _fill(self, model_response: Any, model: str, out: tuple[str, int, int]) -> Any:
            text, prompt, completion = out
            return fill_response(
                model_response,
                model=f"{self.prefix}/{model}",
                text=text,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )

        async def acompletion(  # type: ignore[override]
            self,
            model,
            messages,
            api_base,
            custom_prompt_dict,
            model_response,
            print_verbose,
            encoding,
            api_key,
            logging_obj,
            optional_params,
            acompletion=None,
            litellm_params=None,
            logger_fn=None,
            headers=None,
            timeout=None,
            client=None,
        ):
            meta = call_metadata(litellm_params)
            with recorded(meta):
                out = await self.module.areply(model, messages, dict(optional_params), meta)
            return self._fill(model_response, model, out)

        def completion(  # type: ignore[override]
            self,
            model,
            messages,
            api_base,
            custom_prompt_dict,
            model_response,
            print_verbose,
            encoding,
            api_key,
            logging_obj,
            optional_params,
            acompletion=None,
            litellm_params=None,
            logger_fn=None,
            headers=None,
            timeout=None,
            client=None,
        ):
            meta = call_metadata(litellm_params)
            with recorded(meta):
                out = self.module.reply(model, messages, dict(optional_params), meta)
            return self._fill(model_response, model, out)

        async def astreaming(  # type: ignore[override]
            self,
            model,
            messages,
            api_base,
            custom_prompt_dict,
            model_response,
            print_verbose,
            encoding,
            api_key,
            logging_obj,
            optional_params,
            acompletion=None,
            litellm_params=None,
            logger_fn=None,
            headers=None,
            timeout=None,
            client=None,
        ):
            """The module's ``astream``: pieces as generated, usage in the last chunk."""
            meta = call_metadata(litellm_params)
            with recorded(meta):
                async for chunk in self.module.astream(
                    model, messages, dict(optional_params), meta
                ):
                    yield chunk

        def streaming(  # type: ignore[override]
            self,
            model,
            messages,
            api_base,
            custom_prompt_dict,
            model_response,
            print_verbose,
            encoding,
            api_key,
            logging_obj,
            optional_params,
            acompletion=None,
            litellm_params=None,
            logger_fn=None,
            headers=None,
            timeout=None,
            client=None,
        ):
            """Blocking callers get the whole reply, cut into pieces, then its usage."""
            meta = call_metadata(litellm_params)
            with recorded(meta):
                out = self.module.reply(model, messages, dict(optional_params), meta)
            yield from generic_chunks(*out)

    return OwnProvider
