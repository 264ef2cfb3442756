"""The registry of role kinds: the built-in ones, and any added with :func:`register`.

Team validation, the prompt check, the JSON schema of team files and custom-graph
nodes all read the kinds from here. To add a kind, write a module declaring
``KIND = RoleKind(...)`` (see :mod:`concilium.agents.roles.kind`) and a prompt file,
then list the module in ``_BUILTIN`` below (or call :func:`register` from your code,
as ``tests/test_role_registry.py`` does with a kind of its own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from concilium.agents import prompts
from concilium.agents.roles import (
    critic,
    debater,
    generator,
    judge,
    moderator,
    refiner,
    reflector,
    verifier,
)
from concilium.agents.roles.kind import RoleKind

__all__ = ["get", "kinds", "names", "register", "registered", "unregister"]

_BUILTIN = (generator, verifier, critic, refiner, debater, judge, moderator, reflector)
_kinds: dict[str, RoleKind] = {module.KIND.name: module.KIND for module in _BUILTIN}


def kinds() -> dict[str, RoleKind]:
    """Every registered kind by name, the built-in ones first."""
    return dict(_kinds)


def names() -> tuple[str, ...]:
    """The registered kinds' names, in registration order."""
    return tuple(_kinds)


def get(name: str) -> RoleKind:
    """The kind called ``name``.

    Raises:
        KeyError: no such kind (the message lists the valid ones).
    """
    try:
        return _kinds[name]
    except KeyError:
        raise KeyError(f"unknown role kind {name!r}; valid kinds: {', '.join(_kinds)}") from None


def register(kind: RoleKind) -> RoleKind:
    """Add a role kind (its prompt file, if it has one, becomes its packaged prompt).

    Raises:
        ValueError: a kind of that name is registered already.
    """
    if kind.name in _kinds:
        raise ValueError(f"role kind {kind.name!r} is registered already")
    if kind.prompt is not None:
        prompts.add_prompt_file(kind.name, kind.prompt)
    _kinds[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove an added role kind (the built-in ones stay)."""
    if any(module.KIND.name == name for module in _BUILTIN):
        raise ValueError(f"role kind {name!r} is built in")
    kind = _kinds.pop(name, None)
    if kind is not None and kind.prompt is not None:
        prompts.remove_prompt_file(name)


@contextlib.contextmanager
def registered(kind: RoleKind) -> Iterator[RoleKind]:
    """``kind`` registered for the duration of a ``with`` block (tests, plugins)."""
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)
