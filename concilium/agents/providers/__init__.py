"""In-process model providers, registered with litellm as custom providers.

``local/<name>`` runs a GGUF model with llama.cpp in this process; ``scripted/<name>``
replies from a deterministic script for tests. Both are reached through
``agents.llm.chat`` like any hosted model, so the same code path is tested.
"""

from __future__ import annotations

from typing import Any

__all__ = ["custom_provider_map"]


def custom_provider_map() -> list[dict[str, Any]]:
    """The entries for ``litellm.custom_provider_map``."""
    from concilium.agents.providers.local import LocalProvider
    from concilium.agents.providers.scripted import ScriptedProvider

    return [
        {"provider": "local", "custom_handler": LocalProvider()},
        {"provider": "scripted", "custom_handler": ScriptedProvider()},
    ]
