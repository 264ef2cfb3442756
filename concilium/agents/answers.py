"""Extracting final answers from model text, normalising them, and comparing them.

A tiny model rarely follows the requested format, so extraction degrades in
steps: an explicit pattern from the team file, then the conventional markers
(``Answer:``, ``####``, ``\\boxed{}``), then the last thing of the right shape.
It never raises: no answer is ``None``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Literal

__all__ = ["AnswerFormat", "extract", "normalize", "parse_number", "same"]

AnswerFormat = Literal["number", "choice", "text", "code"]

_NUM = r"[-+−]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?%?"
_NUM_RE = re.compile(_NUM)
# A number alone, or followed by unit words (``18 dollars``, ``2.5 hours``).
_WHOLE_RE = re.compile(rf"({_NUM})(?:\s*[A-Za-z][A-Za-z ]*)?\.?")
_MARKERS = (
    re.compile(r"\\boxed\{([^{}]*)\}"),
    re.compile(r"####\s*([^\n]+)"),
    re.compile(r"(?:final answer|answer)\s*(?:is|:|=)\s*\**\s*([^\n]+)", re.IGNORECASE),
)
_CHOICE_RE = re.compile(r"\(([A-Ha-h])\)|\b([A-H])\b(?:\)|\.|:|$)")
_CODE_RE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def parse_number(text: str, *, whole: bool = False) -> float | None:
    """Read one number written the way people write them: ``1,000``, ``$18.00``, ``3/4``, ``-2``.

    Args:
        text: the text to read.
        whole: the text must be just that number, optionally followed by unit words
            (``18 dollars``); ``1/e`` or ``6 or 12`` then give ``None`` instead of their
            first number. References in datasets are read this way.

    Example:
        >>> parse_number("$1,234.50")
        1234.5
    """
    match = _WHOLE_RE.fullmatch(text.strip()) if whole else _NUM_RE.search(text)
    if match is None:
        return None
    raw = match.group(1 if whole else 0)
    raw = raw.replace("−", "-").replace("$", "").replace(",", "").replace(" ", "")
    percent = raw.endswith("%")
    raw = raw.rstrip("%")
    try:
        value = float(Fraction(raw)) if "/" in raw else float(raw)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100.0 if percent else value


def _format_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def normalize(value: str | None, fmt: AnswerFormat = "number") -> str | None:
    """The canonical form two answers are compared in."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if fmt == "number":
        number = parse_number(value)
        return None if number is None else _format_number(number)
    if fmt == "choice":
        match = _CHOICE_RE.search(value.upper())
        return (match.group(1) or match.group(2)).upper() if match else None
    if fmt == "text":
        text = _ARTICLES.sub(" ", value.lower())
        text = re.sub(r"[^\w\s]", " ", text)
        return " ".join(text.split()) or None
    return value.strip("\n")


def extract(text: str, fmt: AnswerFormat = "number", pattern: str | None = None) -> str | None:
    """Pull the final answer out of a model's reply, normalised; ``None`` when there is none.

    Args:
        text: the raw reply.
        fmt: the team's answer format.
        pattern: a regex from the team file; its first group (or whole match) is the answer.
    """
    if not text:
        return None
    if pattern:
        found = list(re.finditer(pattern, text, re.IGNORECASE | re.MULTILINE))
        if found:
            last = found[-1]
            return normalize(last.group(1) if last.groups() else last.group(0), fmt)
    if fmt == "code":
        blocks = _CODE_RE.findall(text)
        return blocks[-1].strip("\n") if blocks else text.strip("\n")
    for marker in _MARKERS:
        hits = marker.findall(text)
        for hit in reversed(hits):
            value = normalize(hit, fmt)
            if value is not None:
                return value
    if fmt == "number":
        numbers = _NUM_RE.findall(text)
        return normalize(numbers[-1], fmt) if numbers else None
    if fmt == "choice":
        return normalize(text, fmt)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return normalize(lines[-1], fmt) if lines else None


def same(a: str | None, b: str | None, fmt: AnswerFormat = "number", tol: float = 1e-6) -> bool:
    """Whether two answers agree (numbers within a relative tolerance)."""
    if a is None or b is None:
        return False
    if fmt == "number":
        x, y = parse_number(a), parse_number(b)
        if x is None or y is None:
            return False
        return math.isclose(x, y, rel_tol=tol, abs_tol=tol)
    return normalize(a, fmt) == normalize(b, fmt)
