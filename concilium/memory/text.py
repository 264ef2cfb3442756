"""The words of a lesson and of a task, as recall's full-text index sees them.

Pure functions, no database: the same stems are stored with each lesson
(``reflections.terms``) and looked up for each task, so changing :func:`stem` or
:func:`query_terms` needs a migration that recomputes ``reflections.terms`` and
``term_stats``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["MAX_TERMS", "coverage", "index_terms", "query_terms", "stem"]

MAX_TERMS = 24
"""A task is searched by at most this many of its distinctive words."""

_WORD = re.compile(r"[^\W_]+")
_STOP = frozenset(
    """a about above after again all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further get gets got had has have having he her here hers him his how i if in into
    is it its itself just let lets many me more most much must my no nor not now of off on
    once only or other our ours out over own per same she should so some such than that the
    their theirs them then there these they this those through to too under until up upon us
    very was we were what when where which while who whom why will with would you your yours
    answer answers question find give given total number numbers value many much""".split()  # noqa: SIM905
)


def stem(word: str) -> str:
    """A crude stem, enough to match plurals and tenses when re-ranking a few candidates."""
    for suffix, repl, shortest in (
        ("ies", "y", 5),
        ("es", "", 5),
        ("s", "", 4),
        ("ing", "", 6),
        ("ed", "", 5),
    ):
        if word.endswith(suffix) and len(word) >= shortest and not word.endswith("ss"):
            return word[: -len(suffix)] + repl
    return word


def coverage(terms: Sequence[str], text_: str) -> float:
    """The share of ``terms`` that occur in ``text_`` (up to a crude stem)."""
    if not terms:
        return 0.0
    found = {stem(w) for w in _WORD.findall(text_.lower())}
    return sum(1 for t in terms if stem(t) in found) / len(terms)


def query_terms(text_: str, limit: int = MAX_TERMS) -> list[str]:
    """The distinctive words of a text, in order: lowercased, no stop words, no repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text_.lower()):
        if word in _STOP or len(word) < 2 or len(word) > 64:
            continue
        seen.setdefault(word, None)
        if len(seen) >= limit:
            break
    return list(seen)


def index_terms(task: str, lesson: str) -> str:
    """What recall searches a lesson by: the stems of its task's and its own distinctive words.

    Stored with each lesson; changing :func:`stem` or :func:`query_terms` needs a
    migration that recomputes ``reflections.terms`` and ``term_stats``.
    """
    return " ".join(dict.fromkeys(stem(t) for t in query_terms(f"{task} {lesson}", limit=256)))
