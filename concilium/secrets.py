"""Keeping API keys and tokens out of everything we write or print.

The ledger, events, exports, logs and error messages all pass through
:func:`redact`. It removes the values of secret-looking environment variables
(``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``), passwords inside the
configured database and Redis URLs, and strings shaped like common API keys
(``sk-...``, ``Bearer ...``), whether or not we know where they came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MASK", "mark_secret_names", "mask_known", "redact", "redact_obj", "secret_values"]

MASK = "***"
_SECRET_NAME = re.compile(r"(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)
_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}"  # OpenAI-style keys
    r"|(?<=Bearer )[A-Za-z0-9_\-.=]{16,}"  # bearer tokens
    r"|(?<=api_key=)[^\s&'\"]{8,}"
    r"|(?<=://)[^:/@\s]+:[^@/\s]+(?=@))"  # user:password@ in URLs
)
_ANCHORS = ("sk-", "Bearer ", "api_key=", "://")
"""What every match of ``_SHAPES`` contains: text without any of them has no key shape, and
four substring searches cost a few microseconds where the pattern's lookbehinds, tried at
every position, cost ~0.1 ms per kilobyte (twice for each ledger step, issue #17)."""
MIN_SECRET_CHARS = 6
_NAMED: set[str] = set()


def mark_secret_names(names: Iterable[str]) -> None:
    """Treat these environment variables as secrets whatever their names (a team's
    ``api_key_env`` may name ``VLLM_A`` rather than ``*_KEY``)."""
    global _known
    _NAMED.update(names)
    _known = None


_known: tuple[dict[Any, Any], list[str]] | None = None
"""The environment :func:`secret_values` last read, and what it found there."""


def secret_values() -> list[str]:
    """Secret values known right now, longest first (so overlapping ones mask fully).

    Called for every step, checkpoint and ledger batch, so the answer is kept until the
    environment changes: comparing it with the copy read last takes a microsecond,
    reading it again (decoding and matching every variable) a few hundred.
    """
    global _known
    raw = getattr(os.environ, "_data", None)  # CPython's own dict under os.environ
    known = _known
    if known is not None and raw is not None and known[0] == raw:
        return known[1]
    values = {
        value
        for name, value in os.environ.items()
        if (_SECRET_NAME.search(name) or name in _NAMED) and len(value) >= MIN_SECRET_CHARS
    }
    for name in ("CONCILIUM_DATABASE_URL", "CONCILIUM_REDIS_URL"):
        password = urlsplit(os.environ.get(name, "")).password
        if password and len(password) >= 3:
            values.add(password)
    found = sorted(values, key=len, reverse=True)
    if isinstance(raw, dict):
        try:
            _known = (dict(raw), found)
        except RuntimeError:  # another thread changed the environment meanwhile
            _known = None
    return list(found)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every known or key-shaped secret replaced by ``***``."""
    if not text:
        return text
    for value in secrets if secrets is not None else secret_values():  # mask_known, inline
        if value in text:
            text = text.replace(value, MASK)
    # _ANCHORS spelled out: called for every string of every step, twice
    if "sk-" in text or "Bearer " in text or "api_key=" in text or "://" in text:
        return _SHAPES.sub(MASK, text)
    return text


def mask_known(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with this process's own secrets masked, and nothing else touched.

    For a task: a key of ours pasted into one must not reach a model, a checkpoint or
    a prompt, while key-shaped strings that are merely the subject of a task stay.
    """
    for value in secrets if secrets is not None else secret_values():
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_obj(value: Any, secrets: list[str] | None = None) -> Any:
    """:func:`redact` applied to every string inside dicts, lists and tuples."""
    return _redact_obj(value, secret_values() if secrets is None else secrets)


def _redact_obj(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets) if value else value
    if isinstance(value, dict):
        return {k: _redact_obj(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_obj(v, secrets) for v in value)
    return value
