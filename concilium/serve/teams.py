"""The teams a server offers: every team file of a directory, by its ``name:``.

Files are loaded once at start-up through the public :func:`concilium.load_team`
(and their models checked, which also pays litellm's import before the first request);
a broken file is reported (one line) and left out instead of stopping the server,
so one bad team does not take the others down.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError

__all__ = ["TeamRegistry", "options_team"]


@dataclass(frozen=True)
class Entry:
    team: Any  # concilium.Team
    path: Path
    created: int


class TeamRegistry:
    """Team name (and file stem) -> loaded team."""

    def __init__(self, entries: dict[str, Entry]) -> None:
        self._entries = entries
        self._aliases = {e.path.stem: name for name, e in entries.items()}

    @classmethod
    def load(cls, where: Path | str) -> TeamRegistry:
        """Every ``*.yaml`` / ``*.yml`` of a directory (or one file).

        Raises:
            ConfigError: ``where`` does not exist or holds no valid team.
        """
        from concilium import TeamFileError, load_team

        where = Path(where)
        if not where.exists():
            raise ConfigError(f"--teams {where}: no such file or directory")
        files = [where] if where.is_file() else sorted(
            p for p in where.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        entries: dict[str, Entry] = {}
        for path in files:
            try:
                team = load_team(path)
                team.check_models()  # an unroutable model is refused now, not per request
            except TeamFileError as error:
                print(f"skipping team file: {error}", file=sys.stderr)
                continue
            if team.name in entries:
                print(f"skipping team file {path}: team name {team.name!r} is already "
                      f"taken by {entries[team.name].path}", file=sys.stderr)
                continue
            entries[team.name] = Entry(team, path, int(path.stat().st_mtime))
        if not entries:
            raise ConfigError(f"--teams {where}: no valid team file (*.yaml) there")
        return cls(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry | None:
        name = self._aliases.get(name, name) if name not in self._entries else name
        return self._entries.get(name)

    def get(self, name: str) -> Any | None:
        entry = self.entry(name)
        return entry.team if entry is not None else None


def options_team(team: Any, *, temperature: float | None, max_tokens: int | None) -> Any:
    """``team`` with a request's options applied: a temperature for every role the team
    file configures, and a token budget that can only go down (a request never raises
    a limit the team file set)."""
    from concilium import Team

    if temperature is None and max_tokens is None:
        return team
    spec = team.spec
    update: dict[str, Any] = {}
    if temperature is not None:
        update["roles"] = {k: r.model_copy(update={"temperature": temperature})
                           for k, r in spec.roles.items()}
    if max_tokens is not None:
        budget = spec.limits.max_tokens
        budget = max_tokens if budget is None else min(budget, max_tokens)
        update["limits"] = spec.limits.model_copy(update={"max_tokens": budget})
    return Team(spec.model_copy(update=update), source=team.source)
