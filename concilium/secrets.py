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

__all__ = [
    "MASK",
    "StreamRedactor",
    "mark_secret_names",
    "mask_known",
    "redact",
    "redact_obj",
    "secret_values",
]

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


class StreamRedactor:
    """:func:`redact` for text that arrives in pieces (a model's reply as it streams).

    Redacting each piece alone is not enough: a model's tokenizer cuts a key into
    several pieces, and ``Bearer <token>`` is masked only with the word before it. So
    the current line is redacted as a whole each time, and what could still turn out
    to be a secret is held back: the unfinished last word, and any tail that begins a
    known secret value (which may hold a space). What :meth:`feed` returns never
    changes afterwards, so it can go to a terminal at once; :meth:`flush` gives the
    rest when the reply ends. Shown text lags the model by at most one word.
    """

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets = secrets
        self._line = ""
        """The raw text of the current line (since the last newline)."""
        self._sent = 0
        """How much of the current line's redacted text was returned already."""

    def feed(self, text: str) -> str:
        """Take the next piece; return the text that is now safe to show."""
        secrets = self._secrets if self._secrets is not None else secret_values()
        self._line += text
        shown: list[str] = []
        while "\n" in self._line:  # a finished line is redacted whole and let go
            line, _, self._line = self._line.partition("\n")
            shown.append(redact(line, secrets)[self._sent :] + "\n")
            self._sent = 0
        safe = redact(self._line[: self._held_from(self._line, secrets)], secrets)
        if len(safe) > self._sent:
            shown.append(safe[self._sent :])
            self._sent = len(safe)
        return "".join(shown)

    def flush(self) -> str:
        """The reply ended: the rest of its text, redacted."""
        secrets = self._secrets if self._secrets is not None else secret_values()
        rest = redact(self._line, secrets)[self._sent :]
        self._line, self._sent = "", 0
        return rest

    @staticmethod
    def _held_from(line: str, secrets: list[str]) -> int:
        """Where the part of ``line`` that may still become a secret begins."""
        held = len(line)
        while held > 0 and not line[held - 1].isspace():  # the unfinished last word
            held -= 1
        for value in secrets:  # a tail that starts a known secret (it may hold spaces)
            for size in range(min(len(value) - 1, len(line)), 0, -1):
                if line.endswith(value[:size]):
                    held = min(held, len(line) - size)
                    break
        return held
