"""``debate``: multi-agent debate, in one of two forms, one module each.

- ``form: simultaneous`` (Du et al., :mod:`~concilium.graphs.debate.simultaneous`):
  every debater answers in parallel; in each next round every debater reads the
  others' previous answers and may revise, in parallel again. It stops early when
  all agree (``stop_on_consensus``) or after ``rounds`` rounds; the final answer is
  the majority, or a judge's pick (``final: judge``), which may overrule it.
- ``form: adversarial`` (MAD, :mod:`~concilium.graphs.debate.adversarial`): an
  affirmative and a negative argue in turn, a moderator may stop after any round,
  a judge decides at the limit.

Debaters are the team's ``debater`` roles, each with its own model (heterogeneous
teams), or ``debaters: N`` copies of one. What both forms share (options, the
panel, the judged answer) is in :mod:`~concilium.graphs.debate.common`; this
module checks a team against the form it asks for and builds that form.
"""

from __future__ import annotations

from typing import Any

from concilium.graphs.debate.common import SIMULTANEOUS_ONLY, Options, backed, panel, role_of
from concilium.graphs.state import TeamGraph
from concilium.spec import TeamSpec

__all__ = ["Options", "backed", "build", "check", "panel", "role_of"]


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
        from concilium.graphs.debate.adversarial import build_adversarial

        return build_adversarial(team, options.rounds)
    from concilium.graphs.debate.simultaneous import build_simultaneous

    return build_simultaneous(team, options)
