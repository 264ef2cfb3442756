"""The typed results roles parse model text into. Parsers never raise."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Answer", "Critique", "Judgement", "ModeratorDecision", "Reflection", "Verdict"]


class Answer(BaseModel):
    """A solution and the final answer extracted from it (``None`` if none was found)."""

    text: str
    value: str | None = None
    program: str | None = Field(None, description="The program, for program-aided answers.")


class Verdict(BaseModel):
    """A verifier's decision, with feedback the refiner can act on."""

    accepted: bool
    reason: str = ""
    feedback: str = ""
    checked_by: str = "llm"
    checked: bool = Field(True, description="False when the checker had nothing to check.")
    parsed: bool = Field(True, description="False when the model ignored the verdict format.")


class Critique(BaseModel):
    """A critic's findings: the issues and whether the answer should change."""

    issues: list[str] = Field(default_factory=list)
    should_change: bool = False
    parsed: bool = True


class Judgement(BaseModel):
    """A judge's final decision between the answers put to it."""

    answer: str | None = Field(None, description="The chosen final answer, normalised.")
    text: str = ""
    reason: str = ""
    parsed: bool = Field(True, description="False when no answer could be read from the reply.")


class ModeratorDecision(BaseModel):
    """A moderator's call after one round of an adversarial debate."""

    stop: bool = Field(False, description="True when one side is clearly right.")
    winner: Literal["affirmative", "negative"] | None = None
    answer: str | None = Field(None, description="The answer the moderator supports, if any.")
    reason: str = ""
    parsed: bool = True


class Reflection(BaseModel):
    """A lesson drawn from a failed trial, for the next trial's prompt."""

    text: str
    parsed: bool = Field(True, description="False when the reply was empty and we wrote it.")
