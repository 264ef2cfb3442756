"""In-process model providers, registered with litellm as custom providers.

``local/<name>`` runs a GGUF model with llama.cpp in this process; ``scripted/<name>``
replies from a deterministic script for tests; ``faulty/<name>`` wraps another model and
injects timeouts, 429s, 5xx and malformed or empty replies. All are reached through
``agents.llm.chat`` like any hosted model, so the same code path is tested.

A new in-process provider: a module here with a litellm ``CustomLLM`` (use ``base.py``
to read litellm's arguments, fill its response and report your exceptions), listed in
:func:`custom_provider_map`. Providers sit below the model door: they never import
``agents/llm.py``. A hosted model needs no code: any litellm model string works.
"""

from __future__ import annotations

from typing import Any

__all__ = ["custom_provider_map"]


def custom_provider_map() -> list[Any]:
    """The entries for ``litellm.custom_provider_map``."""
    from concilium.agents.providers.faulty import FaultyProvider
    from concilium.agents.providers.local import LocalProvider
    from concilium.agents.providers.scripted import ScriptedProvider

    return [
        {"provider": "local", "custom_handler": LocalProvider()},
        {"provider": "scripted", "custom_handler": ScriptedProvider()},
        {"provider": "faulty", "custom_handler": FaultyProvider()},
    ]
