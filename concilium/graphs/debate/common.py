"""What both debate forms share: the options, the panel of debaters, the judged answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from concilium.agents.context import RunContext
from concilium.agents.roles.results import Judgement
from concilium.spec import RoleSpec, TeamSpec

__all__ = ["SIMULTANEOUS_ONLY", "Options", "backed", "panel", "role_of"]

SIMULTANEOUS_ONLY = ("debaters", "final", "stop_on_consensus")


class Options(BaseModel):
    """Form, round limit and how the final answer is chosen."""

    model_config = ConfigDict(extra="forbid")

    form: Literal["simultaneous", "adversarial"] = "simultaneous"
    rounds: int = Field(3, ge=1, le=10, description="Rounds at most, the first answers included.")
    debaters: int | None = Field(None, ge=1, le=16, description="Copies of one debater role.")
    final: Literal["majority", "judge"] = Field("majority", description="Who picks the answer.")
    stop_on_consensus: bool = Field(True, description="Stop as soon as all debaters agree.")


def panel(team: TeamSpec) -> list[tuple[str, RoleSpec]]:
    """The debaters as ``(name, spec)``: the debater roles, or N numbered copies of one."""
    keys = [key for key in team.roles if team.kind_of(key) == "debater"]
    count = Options.model_validate(team.strategy.options).debaters
    if len(keys) == 1 and count != 1:
        return [(f"{keys[0]}_{i + 1}", team.roles[keys[0]]) for i in range(count or 3)]
    return [(key, team.roles[key]) for key in keys]


def role_of(team: TeamSpec, kind: str) -> tuple[str, RoleSpec]:
    """The (single) role of ``kind``, or defaults under the kind's name."""
    key = next((k for k in team.roles if team.kind_of(k) == kind), kind)
    return key, team.role(key)


def backed(ctx: RunContext, said: list[dict[str, Any]], decision: Judgement) -> dict[str, Any]:
    """The judged answer as the full solution of a debater who gave it (else the judge's text)."""
    for entry in said:
        if ctx.same(entry.get("value"), decision.answer):
            return {"text": entry["text"], "value": entry["value"], "program": entry.get("program")}
    return {"text": decision.text, "value": decision.answer, "program": None}
