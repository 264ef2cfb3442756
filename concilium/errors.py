"""The project's exception types.

The type decides what happens next (see STYLE.md): configuration errors stop
the run and the CLI exits with code 2; model-caused faults are retried, then
reported with exit code 1; a budget stop is not an error at all but a reason
recorded on a partial result.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConciliumError(Exception):
    """Base class for every error this package raises on purpose."""

    exit_code = 1


class ConfigError(ConciliumError):
    """Bad input from the user: a team file, a flag, a setting. Exit code 2."""

    exit_code = 2


@dataclass
class TeamFileError(ConfigError):
    """A team file that cannot be loaded, located as precisely as we can.

    ``str()`` gives one line: ``path:line: field: message``.
    """

    path: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {' '.join(what.split())}"  # always one line


class ModelError(ConciliumError):
    """A model call failed after its retries and fallbacks."""


class MissingDependencyError(ConfigError):
    """An optional dependency is needed; the message names the extra to install."""


class ScriptExhausted(ConciliumError):
    """The scripted provider has no reply left for a role: the test script is too short."""


class BudgetExceeded(ConciliumError):
    """A run limit (calls, tokens, cost) was reached; the run stops with a partial result."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoppedByPerson(ConciliumError):
    """A person told a paused run to stop (a node's ``interrupt:`` gate): not an error,
    the run ends ``stopped`` with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
