"""The edge conditions of custom graphs: a small declared vocabulary, parsed at load time.

A condition is read by a tiny parser into a :class:`Condition` (never ``eval``-ed):
one or more terms joined by ``and``, each optionally preceded by ``not``. A term
is one of :data:`TERMS` or a comparison of the round counter, ``rounds < 3``.

Example:
    >>> parse_condition("not verdict.accepted and rounds < 3").holds(
    ...     {"verdict": {"accepted": False}, "round": 1}, same=str.__eq__)
    True
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TERMS", "Condition", "parse_condition"]

View = Mapping[str, Any]
Same = Callable[[str, str], bool]


def _consensus(view: View, same: Same) -> bool:
    values = [r["answer"].get("value") for r in (view.get("results") or {}).values()
              if r.get("answer") and r.get("kind") != "judge"]
    return len(values) >= 2 and None not in values and all(same(values[0], v) for v in values)


TERMS: dict[str, tuple[Callable[[View, Same], bool], str | None, str]] = {
    "always": (lambda v, s: True, None, "always true (the same as no `when`)"),
    "answer.found": (lambda v, s: (v.get("answer") or {}).get("value") is not None, None,
                     "the current answer has a final value"),
    "verdict.accepted": (lambda v, s: bool((v.get("verdict") or {}).get("accepted")),
                         "verifier", "the last verifier accepted the answer"),
    "critique.issues": (lambda v, s: bool((v.get("critique") or {}).get("should_change")),
                        "critic", "the last critic found issues"),
    "decision.stop": (lambda v, s: bool((v.get("decision") or {}).get("stop")), "moderator",
                      "the last moderator found one side clearly right"),
    "consensus": (_consensus, None, "the latest answers of all answering nodes agree (2+)"),
}
"""Term -> (test, role kind that must be a node for it to mean anything, description)."""

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}
_ROUNDS = re.compile(r"^rounds\s*(<=|>=|==|!=|<|>)\s*(\d{1,3})$")


@dataclass(frozen=True)
class Term:
    """One term of a condition, maybe negated."""

    name: str
    negated: bool = False
    op: str | None = None
    bound: int = 0

    def holds(self, view: View, same: Same) -> bool:
        if self.op is not None:
            value = _COMPARE[self.op](int(view.get("round") or 0), self.bound)
        else:
            value = TERMS[self.name][0](view, same)
        return value != self.negated


@dataclass(frozen=True)
class Condition:
    """Terms that must all hold."""

    text: str
    terms: tuple[Term, ...]

    def holds(self, view: View, same: Same) -> bool:
        """Whether the condition holds on the state after the node's update."""
        return all(term.holds(view, same) for term in self.terms)

    @property
    def bounds_rounds(self) -> bool:
        """True when the condition fails once the round counter passes a fixed number."""
        return any((t.op in ("<", "<=", "==") and not t.negated)
                   or (t.op in (">", ">=") and t.negated) for t in self.terms)

    @property
    def needs(self) -> set[str]:
        """Role kinds that must be nodes of the graph for the condition to mean anything."""
        return {kind for t in self.terms if t.op is None and (kind := TERMS[t.name][1])}

    @property
    def label(self) -> str:
        return "" if self.text == "always" else self.text


def parse_condition(text: str) -> Condition:
    """Parse ``text``; raises ``ValueError`` naming the valid terms when it is not one of them."""
    text = " ".join(str(text).split())
    if not text:
        text = "always"
    terms = []
    for part in re.split(r"\s+and\s+", text):
        negated = part.startswith("not ")
        word = part[4:].strip() if negated else part
        compare = _ROUNDS.match(word)
        if compare:
            terms.append(Term("rounds", negated, compare.group(1), int(compare.group(2))))
        elif word in TERMS:
            terms.append(Term(word, negated))
        else:
            valid = ", ".join(TERMS)
            raise ValueError(
                f"unknown condition {word!r}; valid: {valid}, `rounds < N` (also <=, >, >=, "
                "==, !=), each optionally preceded by `not`, joined with `and`"
            )
    return Condition(text=text, terms=tuple(terms))
