"""``debate``: multi-agent debate, in one of two forms; this module holds what they share.

- ``form: simultaneous`` (Du et al., :mod:`~concilium.graphs.debate_simultaneous`):
  every debater answers in parallel; in each next round every debater reads the
  others' previous answers and may revise, in parallel again. It stops early when
  all agree (``stop_on_consensus``) or after ``rounds`` rounds; the final answer is
  the majority, or a judge's pick (``final: judge``), which may overrule it.
- ``form: adversarial`` (MAD, :mod:`~concilium.graphs.debate_adversarial`): an
  affirmative and a negative argue in turn, a moderator may stop after any round,
  a judge decides at the limit.

Debaters are the team's ``debater`` roles, each with its own model (heterogeneous
teams), or ``debaters: N`` copies of one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from concilium.agents.context import RunContext
from concilium.agents.roles.results import Judgement
from concilium.graphs.state import TeamGraph
from concilium.teams import RoleSpec, TeamSpec

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


def check(spec: TeamSpec) -> tuple[tuple[Any, ...], str] | None:
    """Role kinds, debater count and options must fit the form; rounds must fit the budget."""
    options = Options.model_validate(spec.strategy.options)
    adversarial = options.form == "adversarial"
    allowed = ("debater", "moderator", "judge") if adversarial else ("debater", "judge")
    for key in spec.roles:
        kind = spec.kind_of(key)
        if kind not in allowed or (kind != "debater" and
                                   sum(spec.kind_of(k) == kind for k in spec.roles) > 1):
            return ("roles", key), (f"a {options.form} debate has one role of each kind but "
                                    f"debaters; its role kinds: {', '.join(allowed)}")
    keys = [key for key in spec.roles if spec.kind_of(key) == "debater"]
    if adversarial:
        extra = sorted(set(SIMULTANEOUS_ONLY) & options.model_fields_set)
        if extra:
            return ("strategy", extra[0]), f"{extra[0]} applies to the simultaneous form only"
        if len(keys) != 2:
            return ("roles",), ("the adversarial form needs exactly two debater roles, the "
                                "affirmative first (e.g. `affirmative: {role: debater}`, "
                                f"`negative: {{role: debater}}`); found {len(keys)}")
        calls = 3 * options.rounds + 1
    else:
        if not keys:
            return ("roles",), "debate needs a debater role (e.g. `debater: {temperature: 0.7}`)"
        if len(keys) > 1 and options.debaters not in (None, len(keys)):
            return ("strategy", "debaters"), (f"debaters: {options.debaters} copies one debater "
                                              f"role, but the team names {len(keys)}")
        if options.final == "judge" and not any(spec.kind_of(k) == "judge" for k in spec.roles):
            return ("strategy", "final"), "final: judge needs a judge role (e.g. `judge: {}`)"
        calls = len(panel(spec)) * options.rounds + (options.final == "judge")
    if calls > spec.limits.max_llm_calls:
        return ("strategy", "rounds"), (f"{options.rounds} rounds may need {calls} model calls "
                                        f"but limits.max_llm_calls is {spec.limits.max_llm_calls}")
    return None


def build(team: TeamSpec) -> TeamGraph:
    """The simultaneous or the adversarial debate graph, as ``form`` says."""
    options = Options.model_validate(team.strategy.options)
    if options.form == "adversarial":
        from concilium.graphs.debate_adversarial import build_adversarial

        return build_adversarial(team, options.rounds)
    from concilium.graphs.debate_simultaneous import build_simultaneous

    return build_simultaneous(team, options)
