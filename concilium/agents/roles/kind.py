"""What a role kind is: the one declaration every reader of role kinds reads.

Each role module declares ``KIND = RoleKind(...)``: its name, the template
variables its prompt may use, the type of its result, and ``node``, what a node of
that kind does in a custom graph. Team validation (:mod:`concilium.loader`), the
prompt check, the JSON schema and custom-graph nodes all read the registry
(:mod:`concilium.agents.roles.registry`), so adding a kind is one module (and its
prompt file), registered in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from concilium.agents.context import RunContext
    from concilium.agents.roles.results import Answer
    from concilium.records import Step
    from concilium.spec import RoleSpec

__all__ = ["COMMON_VARIABLES", "Played", "RoleKind", "Turn"]

COMMON_VARIABLES: frozenset[str] = frozenset(
    {"task", "format_hint", "lessons", "behaviors", "round"}
)
"""Template variables every role kind's prompt may use."""


@dataclass
class Turn:
    """What a custom-graph node sees when its turn comes (computed by the graph).

    Roles never read the graph's state themselves: the graph hands them this.
    """

    task: str
    lessons: list[str] | None
    round: int
    answer: Answer
    """The answer the node works on (empty text when there is none yet)."""
    held: bool
    """Whether there is an answer yet (``answer`` is not a placeholder)."""
    own: dict[str, Any]
    """This node's own result from its previous visit (empty on the first)."""
    sample: int
    """Distinguishes this call from the other nodes' and visits' (its own seed)."""
    feedback: str
    """The newest feedback: a rejecting verdict's or a critique's."""
    verdict: dict[str, Any] | None
    """The last verdict in the state."""
    reflections: list[str]
    tests: str | None
    answers: Callable[[tuple[str, ...], str], list[dict[str, Any]]]
    """``answers(kinds, but)``: the latest answers of the nodes of ``kinds`` (not ``but``)."""


@dataclass
class Played:
    """A node's turn: the shared state fields it writes, its own result, its ledger step."""

    shared: dict[str, Any]
    """State fields (``answer``, ``verdict``, ``critique``, ``decision``, ``reflections``)."""
    result: dict[str, Any]
    """What goes under ``results[<node>]`` besides the kind, visits and time."""
    step: Step


NodeFn = Callable[["RunContext", str, "RoleSpec", Turn], Awaitable[Played]]


@dataclass(frozen=True)
class RoleKind:
    """A role kind, as its module declares it."""

    name: str
    """The kind's name in team files (``role: <name>``, or the role's key)."""
    variables: frozenset[str]
    """Template variables its prompt may use besides :data:`COMMON_VARIABLES`."""
    result: type[BaseModel]
    """What its call is parsed into."""
    node: NodeFn
    """What a node of this kind does in a custom graph (``strategy: graph``)."""
    answers: bool = False
    """Its result is an answer (a judge, a moderator and the strategies read those)."""
    program_aided: bool = False
    """It may write a program instead of an answer (``program_aided:``)."""
    checks: bool = False
    """It may have a ``check:`` (a tool instead of, or before, a model)."""
    playable: bool = True
    """A person may play it (``role: human``, ``plays: <kind>``)."""
    prompt: Path | None = None
    """Its prompt file; ``None``: the packaged ``concilium/prompts/<name>.yaml``."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> frozenset[str]:
        """Every template variable its prompt may use."""
        return COMMON_VARIABLES | self.variables
