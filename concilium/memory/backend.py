"""What a run needs of memory, as protocols: the seam for another memory backend.

A run (:mod:`concilium.run.memory`) recalls lessons, remembers new ones, counts
their use, records its steps in a ledger, journals its model calls and asks for a
response cache, and nothing else. :class:`MemoryBackend` states exactly that, so
a backend other than SQL (or a test double) only has to provide these methods.

The implementation is :class:`~concilium.memory.store.Memory`: SQL (SQLite or
PostgreSQL) is the source of truth, and Redis, when configured, is a layer over
it (:mod:`concilium.memory.redis_layer`: the response cache, the hot set of recent
lessons, live run events and locks) that degrades to SQL alone when it goes away.

A new backend goes in a module of this package next to ``store.py``, implementing
:class:`MemoryBackend`; ``Memory.open`` is where a URL would choose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from concilium.memory.store import Lesson
    from concilium.records import RunResult, Step

__all__ = ["CallLog", "MemoryBackend", "RunLedger", "StepRecorder"]


class StepRecorder(Protocol):
    """One run's handle on the ledger: steps as they happen, the outcome at the end."""

    run_id: str

    def step(self, step: Step) -> None:
        """Record one step (idempotent by the step's id: a re-sent step is stored once)."""

    def event(self, event: dict[str, Any]) -> None:
        """Publish an extra event on the run's live stream (not a step)."""

    def used(self, ids: Sequence[int], correct: bool | None) -> None:
        """Count a recall of lessons ``ids``, and whether the run ended right."""

    def finish(self, result: RunResult) -> None:
        """The run's outcome and totals."""

    def fail(self, error: BaseException) -> None:
        """The run ended by an unexpected exception."""

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Wait until everything recorded so far is stored."""


class RunLedger(Protocol):
    """Where runs are recorded."""

    def start(
        self,
        *,
        run_id: str,
        team: str,
        team_hash: str,
        strategy: str,
        task: str,
        reference: str | None = None,
        namespace: str | None = None,
        recalled: Sequence[int] = (),
    ) -> StepRecorder:
        """A new run's recorder (its row says ``running``)."""

    def reopen(self, run_id: str) -> StepRecorder | None:
        """A resumed run's recorder, going on after its last step; ``None``: no row yet."""


class CallLog(Protocol):
    """A durable run's completed model calls, so a resume never pays for one twice."""

    def load(self) -> int:
        """Read the run's calls (a resume); returns how many."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, result: dict[str, Any]) -> None:
        """Store one call's result before anyone uses it."""

    def put_now(self, key: str, result: dict[str, Any]) -> bool:
        """:meth:`put` right here if that takes no waiting; ``False``: :meth:`put` it off
        the event loop instead."""

    def forget(self) -> None:
        """Drop the run's calls (it finished)."""

    def forget_later(self) -> None:
        """:meth:`forget`, queued: the run does not wait."""


@runtime_checkable
class MemoryBackend(Protocol):
    """Everything a run asks of memory."""

    def recall(
        self, task: str, *, namespace: str, k: int = 3, verified_only: bool = True
    ) -> list[Lesson]:
        """The ``k`` lessons most relevant to ``task`` in ``namespace``, best first."""

    def remember(
        self,
        lesson: str,
        *,
        task: str,
        namespace: str,
        outcome: Any,
        verified_by: str | None = None,
        run_id: str | None = None,
        team: str | None = None,
        model: str | None = None,
        uid: str | None = None,
    ) -> int:
        """Store a lesson with its provenance (idempotent by ``uid``); returns its id."""

    def record_use(self, ids: Sequence[int], correct: bool | None) -> None:
        """Count a recall of ``ids`` outside a recorded run."""

    @property
    def ledger(self) -> RunLedger:
        """Where this memory records runs."""

    @property
    def cache(self) -> Any:
        """The model-response cache (an ``agents.llm.ResponseCache``), or ``None``."""

    def journal(self, run_id: str) -> CallLog:
        """The call journal of durable run ``run_id``."""
