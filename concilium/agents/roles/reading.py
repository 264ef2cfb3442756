"""Reading a judgement out of a small model's free text: JSON, markers, then plain words.

The critic and the verifier ask for structured output where the model supports a
JSON schema, and for explicit markers (``VERDICT:``, ``ISSUE:``, ``NO ISSUES``)
elsewhere. A tiny model follows neither reliably, so these helpers read what it
does write, in a fixed order of trust, and say "not understood" (``None``) rather
than guess. Words are read with their negation: "no error" and "nothing wrong"
praise a solution, "not correct" faults it, and "the correct answer is 23" states
an answer instead of judging one (tests/corpus holds the real replies they were
written against).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

__all__ = ["FAULT", "SOUND", "Tone", "first_sentence", "json_object", "stated_answer", "tone",
           "tones"]

Tone = Literal["sound", "fault"]
SOUND: Tone = "sound"
FAULT: Tone = "fault"

_PROBLEM = r"(?:errors?|mistakes?|issues?|problems?|flaws?|faults?)"
# Praise written with a negation: these read as sound before any fault word is seen.
_NEGATED_FAULT = re.compile(
    rf"\b(?:no|not any|without|free of|zero|never an?)\s+(?:\w+\s+){{0,2}}?{_PROBLEM}\b"
    r"|\bnothing (?:is |seems |looks )?(?:wrong|incorrect)\b"
    r"|\bnot (?:wrong|incorrect)\b"
    r"|\b(?:isn'?t|aren'?t) (?:wrong|incorrect)\b",
    re.IGNORECASE,
)
# "the correct answer is 23" names an answer; it does not call this one correct.
_NAMED_ANSWER = re.compile(
    r"\b(?:correct|right|true|actual|real)\s+(?:final\s+)?(?:answer|solution|result|value|total)",
    re.IGNORECASE,
)
_FAULT_WORDS = re.compile(
    r"\b(?:incorrect|not (?:correct|right|valid|accurate|true)|(?:isn'?t|aren'?t) "
    r"(?:correct|right)|wrong|rejected?|mistakes?|errors?|erroneous|invalid|false|flawed|"
    rf"miscalculat\w*|{_PROBLEM})\b",
    re.IGNORECASE,
)
_SOUND_WORDS = re.compile(r"\b(?:correct|right|accept(?:ed)?|valid|accurate|true)\b",
                          re.IGNORECASE)
_STATED = re.compile(
    r"(?:^|\n|\.\s)\W*(?:the\s+)?(?:(?:correct|right|actual|final)\s+)?answer"
    r"(?:\s+(?:is|should be|would be|=)\s*|\s*:\s*)(?:actually\s+|indeed\s+|really\s+)?"
    r"(?P<value>[-+$]?\d[\d,./]*)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def tone(text: str) -> Tone | None:
    """``sound`` or ``fault`` by the first judging word in ``text``; ``None`` if it has none."""
    cues = _cues(text)
    return min(cues)[1] if cues else None


def tones(text: str) -> set[Tone]:
    """Every kind of judging word in ``text`` ("correct but wrong" has both)."""
    return {kind for _, kind in _cues(text)}


def _cues(text: str) -> list[tuple[int, Tone]]:
    cues: list[tuple[int, Tone]] = []
    masked = text
    for match in _NEGATED_FAULT.finditer(text):
        cues.append((match.start(), SOUND))
        masked = masked[:match.start()] + " " * (match.end() - match.start()) + masked[match.end():]
    masked = _NAMED_ANSWER.sub(lambda m: " " * len(m.group(0)), masked)
    faults = [(m.start(), FAULT) for m in _FAULT_WORDS.finditer(masked)]
    fault_spans = [range(m.start(), m.end()) for m in _FAULT_WORDS.finditer(masked)]
    sounds = [(m.start(), SOUND) for m in _SOUND_WORDS.finditer(masked)
              if not any(m.start() in span for span in fault_spans)]  # "in|correct", "not right"
    return cues + faults + sounds


def first_sentence(text: str) -> str:
    """The reply's first sentence (or line): where a small model puts its verdict, if anywhere."""
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    return parts[0] if parts else ""


def stated_answer(text: str) -> str | None:
    """The answer the reply itself gives ("the answer is 23", "Answer: 23"), if it gives one."""
    found = list(_STATED.finditer(text))
    return found[-1].group("value").rstrip(".,/") if found else None


def json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (structured output, or a model that wrote JSON)."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None
