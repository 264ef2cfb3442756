"""The typed results roles parse model text into. Parsers never raise."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["Answer", "Critique", "Verdict"]


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
