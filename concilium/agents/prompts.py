"""Role prompts: packaged Jinja2 templates (``concilium/prompts/*.yaml``), overridable in YAML.

Rendering is strict (an undefined name raises), and a team file's templates are
checked at load time against the variables each role kind provides, so a typo
in a prompt fails before any model is called.
"""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from concilium.teams import PromptSpec, TeamSpec

__all__ = ["DECLARED_VARIABLES", "FORMAT_HINTS", "VARIABLES", "check_prompt", "render"]

FORMAT_HINTS: dict[str, str] = {
    "number": "Finish with a last line of the form 'Answer: <number>'.",
    "choice": "Finish with a last line of the form 'Answer: <letter>'.",
    "text": "Finish with a last line of the form 'Answer: <your answer>'.",
    "code": "Give the complete solution in one ```python code block.",
}

_COMMON = {"task", "format_hint", "lessons", "behaviors", "round"}
VARIABLES: dict[str, set[str]] = {
    "generator": _COMMON | {"reflections"},
    "refiner": _COMMON | {"answer", "feedback"},
    "verifier": _COMMON | {"answer", "final"},
    "critic": _COMMON | {"answer", "final"},
    "debater": _COMMON | {"answer", "others", "side", "opponent"},
    "judge": _COMMON | {"answers"},
    "moderator": _COMMON | {"affirmative", "negative"},
    "reflector": _COMMON | {"answer", "final", "feedback", "reflections"},
    "human": {"plays", "question", "instructions"},
}
"""Template variables each role kind provides."""
DECLARED_VARIABLES: set[str] = _COMMON | {"answer", "final", "feedback", "answers", "notes"}
"""Template variables of a kind a team file declares (``kinds:``): the task, the current
answer (``answer``: its text, ``final``: its value), the newest feedback, every
answering node's latest answer (``answers``: ``{name, text, value}``) and every
text-giving node's latest text (``notes``: ``{name, text}``)."""

# Sandboxed: templates come from user files and must not reach Python internals.
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    """A template compiled once per distinct text: compiling costs ~1 ms, rendering ~20 µs."""
    return _env.from_string(source)


@cache
def packaged(kind: str) -> dict[str, str]:
    """The packaged ``system``/``user`` templates of a role kind."""
    text = resources.files("concilium.prompts").joinpath(f"{kind}.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {"system": data["system"], "user": data["user"]}


def render(kind: str, override: PromptSpec | None, **variables: Any) -> list[dict[str, str]]:
    """Chat messages for a role: its override templates where given, else the packaged ones
    (a kind a team declares has none: its override gives both)."""
    full = override is not None and override.system is not None and override.user is not None
    base = {} if full else packaged(kind)
    templates = {
        "system": (override.system if override and override.system is not None else base["system"]),
        "user": (override.user if override and override.user is not None else base["user"]),
    }
    values = {"lessons": [], "behaviors": [], "round": 0, **variables}
    messages = []
    for role in ("system", "user"):
        content = _compiled(templates[role]).render(**values).strip()
        if content:
            messages.append({"role": role, "content": content})
    return messages


def check_prompt(kind: str, prompt: PromptSpec, team: TeamSpec | None = None,
                 ) -> tuple[str, str] | None:
    """``(field, message)`` for a template that would fail at run time, else ``None``.

    A kind ``team`` declares (``kinds:``) gets :data:`DECLARED_VARIABLES`.
    """
    declared = team is not None and kind in team.kinds
    allowed = DECLARED_VARIABLES if declared else VARIABLES.get(kind, _COMMON)
    for field in ("system", "user"):
        template = getattr(prompt, field)
        if template is None:
            continue
        try:
            names = meta.find_undeclared_variables(_env.parse(template))
        except TemplateSyntaxError as error:
            return field, f"template error on its line {error.lineno}: {error.message}"
        unknown = sorted(names - allowed)
        if unknown:
            return field, (
                f"unknown template variable {', '.join(unknown)}; "
                f"a {kind} prompt can use: {', '.join(sorted(allowed))}"
            )
    return None
