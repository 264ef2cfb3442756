"""Run teams over a dataset, concurrently, streaming every result to disk; resumable.

Layout of an output directory:

- ``items.jsonl`` — one JSON record per (team, item) as each finishes, flushed
  at once, so Ctrl-C (or a crash) leaves every finished item on disk and at
  worst one torn last line, which the next run cuts off;
- ``summary.json`` — per-team accuracy (a fraction of the items the team
  completed) with its Wilson interval, the items that failed for reasons of
  infrastructure (counted apart, never as wrong answers), calls, tokens, cost,
  latency percentiles and flips, plus paired McNemar comparisons on the items
  both teams completed; ``"complete": false`` when the run was interrupted.

With a database configured (``concilium eval`` decides, see
:func:`concilium.eval.store.wanted`), every record also goes to SQL as it is
written (:mod:`concilium.eval.store`): ``concilium evals show`` rebuilds this
summary from there.

Both files, and the report, pass through :func:`concilium.secrets.mask_known`: a
key of ours inside a dataset question is written as ``***``, as a run writes it.

A record is keyed by the team's content hash (``--model`` changes it), the
item's key and the memory mode (``off``, ``read``, ``learn`` are separate
experiments). Rerunning the same command skips every (team, item) that already
has a final outcome (``ok``, ``stopped``, ``timeout``); ``failed`` (a model
failed after its retries) and ``error`` items are tried again. Retries of single
calls belong to the model layer (the team's ``retry:`` and the per-model circuit
breaker, :mod:`concilium.agents.breaker`); this runner re-queues a whole item
only when it failed for a transient reason (rate limit, 5xx, timeout, a model
cooling down), after a growing backoff, for ``requeue_rounds`` rounds: an
overnight run against a flaky API finishes instead of losing items.
Records graded under other grader settings are regraded from their stored reply,
without calling a model.

The dataset's answer is the *grader's*: a team's ``check: reference`` verifier
sees it only with ``reveal_reference`` (``--reveal-reference``), and the summary
and report mark the teams that did.

Example:
    >>> evaluation = Evaluation([team_a, team_b], load_dataset("arith:50"), Path("out"))
    >>> await evaluation.run()
    >>> evaluation.summary()["teams"][0]["accuracy"]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from concilium.agents.breaker import BreakerPolicy
from concilium.errors import ConfigError
from concilium.eval.datasets import Dataset, Item
from concilium.eval.graders import Grader, grader_for
from concilium.eval.stats import COMPLETED, compare, summarize_team

__all__ = [
    "FINAL_STATUSES",
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "EvalOptions",
    "Evaluation",
    "MemoryMode",
    "ResultSink",
    "Tally",
    "summary_of",
]

RESULTS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
FINAL_STATUSES = frozenset({"ok", "stopped", "timeout"})
"""Outcomes a rerun keeps; any other status is run again."""
TRANSIENT_ERRORS = frozenset({
    "Timeout", "TimeoutError", "RateLimitError", "APIConnectionError", "ConnectionError",
    "ServiceUnavailableError", "InternalServerError", "BadGatewayError", "CircuitOpen",
})
"""Error types in a failed run's message (``model: Type: text``) worth running the item again."""

MemoryMode = Literal["off", "read", "learn"]


class ResultSink(Protocol):
    """Where records go besides ``items.jsonl``: :class:`concilium.eval.store.EvalStore`
    (SQL). Called by the process that writes the file, so each record has one writer."""

    def begin(self, evaluation: Evaluation) -> None:
        """Before items run: the evaluation as it starts, with the records it holds."""

    def put(self, record: dict[str, Any]) -> None:
        """One record just appended to the file (must not block the event loop)."""

    def flush(self) -> bool:
        """Wait until every record put so far is stored."""

    def finish(self, evaluation: Evaluation, summary: dict[str, Any]) -> None:
        """``summary.json`` was written with ``summary``."""


@dataclass(frozen=True)
class EvalOptions:
    """How an evaluation runs. Frozen: one evaluation, one set of options."""

    concurrency: int = 4
    """Team runs in flight at once, across all teams."""
    item_timeout_s: float | None = None
    """Wall-clock limit of one team on one item (``None``: only the team's own limit)."""
    memory: MemoryMode = "off"
    """``off``: no lessons; ``read``: recall stored lessons; ``learn``: recall and store."""
    seed: int = 0
    """Base sampling seed given to every run."""
    answer_format: str | None = None
    """Grade every team in this format instead of each team's own ``answer.format``."""
    tolerance: float | None = None
    """Relative tolerance for numbers instead of each team's ``answer.tolerance``."""
    requeue_rounds: int = 3
    """Times an item that failed for a transient reason is queued again (0: never)."""
    requeue_backoff_s: float = 2.0
    """Wait before an item's first re-queue; doubles each round."""
    breaker: BreakerPolicy | None = None
    """The per-model circuit breaker for this evaluation's calls (``None``: its default)."""
    reveal_reference: bool = False
    """Let ``check: reference`` verifiers see the dataset's answers (they grade with the key)."""


@dataclass
class Tally:
    """Live counts of one team, for progress bars."""

    team: str
    total: int
    done: int = 0
    correct: int = 0
    failed: int = 0
    """Items that failed for reasons of infrastructure (not counted in accuracy)."""
    tokens: int = 0
    cost: float = 0.0

    @property
    def accuracy(self) -> float | None:
        """Over the items the team completed."""
        completed = self.done - self.failed
        return self.correct / completed if completed else None

    def add(self, record: dict[str, Any]) -> None:
        self.done += 1
        if record.get("status") in COMPLETED:
            self.correct += bool(record.get("correct"))
        else:
            self.failed += 1
        self.tokens += int(record.get("total_tokens", 0))
        self.cost += float(record.get("cost", 0.0))


def _with_memory_mode(team: Any, mode: MemoryMode) -> Any:
    """The team as it runs under ``mode``: ``read`` never stores, ``learn`` stores failures.

    ``learn`` keeps a team's own ``remember: always``; otherwise it stores a lesson
    after each wrong item (checked against the dataset's answer, which the
    reflector never sees). ``off`` needs no change: the run gets no memory at all.
    """
    if mode == "off":
        return team
    from concilium.team import Team

    policy = team.spec.memory.remember
    remember = "never" if mode == "read" else ("always" if policy == "always" else "on_failure")
    memory = team.spec.memory.model_copy(update={"remember": remember})
    return Team(team.spec.model_copy(update={"memory": memory}), source=team.source)


@dataclass
class _Job:
    """One (team, item) to run, with what its earlier, re-queued tries spent."""

    index: int
    position: int
    item: Item
    rounds: int = 0
    """Times it was re-queued after a transient failure."""
    spent: dict[str, float] = field(default_factory=dict)

    def spend(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with the usage of the earlier tries added (a failed try still costs)."""
        for key in _USAGE_FIELDS:
            record[key] = record.get(key, 0) + self.spent.get(key, 0)
            self.spent[key] = record[key]
        record["requeued"] = self.rounds
        return record


_USAGE_FIELDS = ("llm_calls", "tool_calls", "prompt_tokens", "completion_tokens",
                 "total_tokens", "cost", "retries", "fallbacks")


@dataclass
class _Slot:
    """One team of the evaluation with what grades it."""

    team: Any
    hash: str
    grader: Grader
    tally: Tally
    sees_reference: bool = False
    """A ``check: reference`` verifier of this team is shown the dataset's answers."""
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    """item key -> latest record."""

    @property
    def checks_reference(self) -> bool:
        return any(role.check == "reference" for role in self.team.spec.roles.values())

    def models(self) -> set[str]:
        """Every model string this team's roles may call (their fallbacks included)."""
        from concilium.settings import get_settings

        spec = self.team.spec
        default = spec.model or get_settings().model
        return {m for role in spec.roles.values() for m in (role.model or default,
                                                              *role.fallbacks)}


class Evaluation:
    """Teams × items into ``out_dir``; resumable, concurrency-limited, streamed to disk."""

    def __init__(
        self,
        teams: Sequence[Any],
        dataset: Dataset,
        out_dir: Path,
        options: EvalOptions = EvalOptions(),
    ) -> None:
        if not teams:
            raise ConfigError("give at least one team file")
        if options.concurrency < 1:
            raise ConfigError(f"--concurrency must be 1 or more, not {options.concurrency}")
        if options.item_timeout_s is not None and options.item_timeout_s <= 0:
            raise ConfigError(f"--timeout must be positive, not {options.item_timeout_s}")
        names = [t.name for t in teams]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(
                f"two team files share the name {duplicates[0]!r}; the results name teams by "
                "their `name:`, so give each a distinct one"
            )
        if options.memory not in ("off", "read", "learn"):
            raise ConfigError(f"--memory must be off, read or learn, not {options.memory!r}")
        if options.requeue_rounds < 0:
            raise ConfigError(f"--requeue must be 0 or more, not {options.requeue_rounds}")
        if options.requeue_backoff_s < 0:
            raise ConfigError(f"--requeue-backoff must be 0 or more, not "
                              f"{options.requeue_backoff_s}")
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.options = options
        self.slots: list[_Slot] = []
        for team in teams:
            answer = team.spec.answer
            fmt = options.answer_format or answer.format
            tolerance = options.tolerance if options.tolerance is not None else answer.tolerance
            grader = grader_for(fmt, tolerance=tolerance)
            require = getattr(grader, "require", None)
            if require is not None:
                require()
            # the hash is the user's team, before the memory mode adjusts its policy
            slot = _Slot(_with_memory_mode(team, options.memory), team.spec.content_hash(),
                         grader, Tally(team.name, len(dataset.items)))
            slot.sees_reference = options.reveal_reference and slot.checks_reference
            self.slots.append(slot)
        self.skipped_lines = 0
        self.requeued = 0
        """Items queued again after a transient failure, in this process."""
        self._breakers: Any = None
        """The running loop's circuit breakers (read by progress bars from their thread)."""
        self.started_at = time.time()
        self.finished_at: float | None = None
        self._file: IO[str] | None = None
        self._loaded = False
        self._memory: Any = False
        """What every run gets as ``memory=``: ``False`` (off) or the opened store."""
        self._executor: Callable[[int, int, Item], Awaitable[dict[str, Any]]] = self.run_item
        self.store: ResultSink | None = None
        """Where records go in SQL besides ``items.jsonl`` (``None``: files only); set by the
        driver, never by a Ray worker, so each record is written by the one process."""

    @property
    def results_path(self) -> Path:
        return self.out_dir / RESULTS_FILE

    @property
    def summary_path(self) -> Path:
        return self.out_dir / SUMMARY_FILE

    # ------------------------------------------------------------------ running

    async def run(
        self,
        on_record: Callable[[int, dict[str, Any]], None] | None = None,
        executor: Callable[[int, int, Item], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        """Run every (team, item) not already done; ``on_record(team_index, record)`` after each.

        Items go out item by item across teams, so every team advances together and
        an interrupted run still compares teams on the same items. An item that
        failed for a transient reason goes back in the queue after a backoff (its
        worker takes other items meanwhile); only its final record is written.
        ``executor(team_index, position, item)`` runs one item elsewhere (a Ray worker
        calling :meth:`run_item` on its own copy of this evaluation); the default is
        :meth:`run_item` here.
        """
        self._executor = executor or self.run_item
        from concilium.agents import breaker
        from concilium.agents.llm import warm_litellm

        # pay the import before the first item's clock starts, if any call needs litellm
        warm_litellm(slot.team.spec for slot in self.slots)
        if self.options.memory != "off" and self._memory is False:
            from concilium.memory import Memory

            self._memory = await asyncio.to_thread(Memory.open)  # once, and fail before items
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.load()
        if self.store is not None:  # the evaluation's row, and what a killed run left unwritten
            await asyncio.to_thread(self.store.begin, self)
        self._breakers = breaker.registry()
        previous = (self._breakers.configure(self.options.breaker)
                    if self.options.breaker is not None else None)
        pending: asyncio.Queue[_Job] = asyncio.Queue()
        for position, item in enumerate(self.dataset.items):
            for index, slot in enumerate(self.slots):
                done = slot.records.get(item.key)
                if done is None or done.get("status") not in FINAL_STATUSES:
                    pending.put_nowait(_Job(index, position, item))
        self._left = pending.qsize()
        self._finished = asyncio.Event()
        try:
            with self._open() as self._file, _quiet_collector():
                await self._regrade()
                self._retally()
                if self._left:
                    await self._work(pending, on_record)
        finally:
            if previous is not None:
                self._breakers.configure(previous)
            if self.store is not None:
                self.store.flush()  # every record on disk is in SQL too (or warned about)
        self.finished_at = time.time()

    async def _work(
        self,
        pending: asyncio.Queue[_Job],
        on_record: Callable[[int, dict[str, Any]], None] | None,
    ) -> None:
        """``concurrency`` workers until every job has its final record."""
        try:
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(self._worker(pending, group, on_record))
                           for _ in range(min(self.options.concurrency, self._left))]
                await self._finished.wait()
                for worker in workers:
                    worker.cancel()
        except* ConfigError as failures:
            raise failures.exceptions[0] from None

    async def _worker(
        self,
        pending: asyncio.Queue[_Job],
        group: asyncio.TaskGroup,
        on_record: Callable[[int, dict[str, Any]], None] | None,
    ) -> None:
        while True:
            job = await pending.get()
            index, slot = job.index, self.slots[job.index]
            record = job.spend(await self._executor(job.index, job.position, job.item))
            if job.rounds < self.options.requeue_rounds and _transient(record):
                delay = self.options.requeue_backoff_s * 2**job.rounds
                self.requeued += 1
                job.rounds += 1
                group.create_task(_later(delay, pending.put_nowait, job))
                continue
            record = self._keep(index, record)
            slot.tally.add(record)
            if on_record is not None:
                on_record(index, record)
            self._left -= 1
            if self._left == 0:
                self._finished.set()

    async def run_item(self, index: int, position: int, item: Item) -> dict[str, Any]:
        """Team ``index`` on ``item`` -> its graded record (the seam a remote executor calls)."""
        if self.options.memory != "off" and self._memory is False:
            from concilium.memory import Memory

            self._memory = await asyncio.to_thread(Memory.open)
        return await self._run_one(self.slots[index], position, item)

    async def _run_one(self, slot: _Slot, position: int, item: Item) -> dict[str, Any]:
        from concilium.team import RunFailed, Usage

        steps: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"reference": item.reference, "seed": self.options.seed,
                                  "reveal_reference": slot.sees_reference,
                                  "on_step": steps.append, "memory": self._memory,
                                  "durable": False,  # an evaluation resumes by item
                                  "tests": item.tests}
        result: Any = None
        status, error = "ok", None
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.options.item_timeout_s):
                result = await slot.team.arun(item.question, **kwargs)
            status = result.status
        except TimeoutError:
            status, error = "timeout", f"item timeout ({self.options.item_timeout_s:g} s)"
        except RunFailed as failure:
            result, status, error = failure.result, "failed", str(failure)
        except ConfigError:
            raise
        except Exception as failure:  # a fault of this item (e.g. a short script), not of the run
            status, error = "error", f"{type(failure).__name__}: {failure}"
        wall_ms = (time.perf_counter() - start) * 1000.0
        usage = result.usage if result is not None else Usage.of(steps)  # type: ignore[arg-type]
        text = result.answer_text if result is not None else ""
        answer = result.answer if result is not None else None
        record: dict[str, Any] = {
            "team": slot.team.name,
            "team_hash": slot.hash,
            "item": item.key,
            "item_id": item.id,
            "split": item.meta.get("split"),  # export leaves held-out items out
            "position": position,
            "question": item.question,
            "expected": list(item.answers),
            "status": status,
            "stop_reason": result.stop_reason if result is not None else None,
            "error": error,
            "answer": answer,
            "answer_text": text,
            "team_correct": result.correct if result is not None else None,
            **usage.model_dump(),
            "wall_ms": result.wall_ms if result is not None and status != "timeout" else wall_ms,
            "rounds": result.rounds if result is not None else 0,
            "flips": dict(result.flips) if result is not None else {},
            "revisions": sum(1 for s in (result.steps if result is not None else steps)
                             if s.get("answer_changed") is not None),
            "run_id": result.run_id if result is not None else None,
            "memory": self.options.memory,
            "lessons_recalled": len(result.lessons) if result is not None else 0,
            "lessons_stored": len(result.remembered) if result is not None else 0,
            "seed": self.options.seed,
            "reference_revealed": slot.sees_reference,
            "at": time.time(),
        }
        return await self._graded(slot, item, record)

    async def _graded(self, slot: _Slot, item: Item, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with the grader's decision (a failed run with no reply is simply wrong)."""
        same_format = slot.grader.name == slot.team.spec.answer.format
        answer = record.get("answer") if same_format else None
        text = record.get("answer_text") or ""
        if slot.grader.blocking:
            grade = await asyncio.to_thread(slot.grader.grade, item, text, answer)
        else:
            grade = slot.grader.grade(item, text, answer)
        return {**record, "correct": grade.correct, "extracted": grade.extracted,
                "matched": grade.expected if grade.correct else None,
                "grader": slot.grader.id, "grade_detail": grade.detail}

    async def _regrade(self) -> None:
        """Regrade kept records graded under other settings (no model is called)."""
        by_key = {item.key: item for item in self.dataset.items}
        for index, slot in enumerate(self.slots):
            for key, record in list(slot.records.items()):
                if record.get("grader") != slot.grader.id and key in by_key:
                    self._keep(index, await self._graded(slot, by_key[key], record))

    def _keep(self, index: int, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``record`` (our secrets masked) and make it the item's latest; returns it."""
        record = _masked(record)
        self._write(record)
        if self.store is not None:
            self.store.put(record)
        self.slots[index].records[record["item"]] = record
        return record

    # ------------------------------------------------------------------ disk

    def load(self) -> None:
        """Read earlier records of these teams on these items (the resume state)."""
        self._loaded = True
        for slot in self.slots:
            slot.records.clear()
        self._retally()
        if not self.results_path.exists():
            return
        wanted = {item.key for item in self.dataset.items}
        by_hash = {slot.hash: slot for slot in self.slots}
        self.skipped_lines = 0
        with self.results_path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    self.skipped_lines += 1  # a line torn by a hard kill
                    continue
                if not isinstance(record, dict) or record.get("memory") != self.options.memory:
                    continue  # results under another memory mode are another experiment
                owner = by_hash.get(str(record.get("team_hash")))
                # earlier records are from runs that always showed the reference
                revealed = record.get("reference_revealed", owner and owner.checks_reference)
                if owner is not None and record.get("item") in wanted and (
                        bool(revealed) == owner.sees_reference):
                    owner.records[record["item"]] = record
        self._retally()

    def _retally(self) -> None:
        """Progress counts start from the kept (final) records: they will not run again."""
        for slot in self.slots:
            slot.tally = Tally(slot.team.name, len(self.dataset.items))
            for record in slot.records.values():
                if record.get("status") in FINAL_STATUSES:
                    slot.tally.add(record)

    @contextlib.contextmanager
    def _open(self) -> Any:
        if self.results_path.exists():
            _drop_torn_tail(self.results_path)
        with self.results_path.open("a", encoding="utf-8") as handle:
            yield handle
        self._file = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("results file is not open")
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    # ------------------------------------------------------------------ summary

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """Team name -> its records on the selected items, in dataset order."""
        order = {item.key: i for i, item in enumerate(self.dataset.items)}
        return {
            slot.team.name: sorted(slot.records.values(), key=lambda r: order[r["item"]])
            for slot in self.slots
        }

    def summary(self, *, complete: bool | None = None) -> dict[str, Any]:
        """The summary of every record so far (``complete`` defaults to: all items done)."""
        if not self._loaded:
            self.load()
        return summary_of(self.head(complete), self.team_descriptions(), self.records())

    def head(self, complete: bool | None = None) -> dict[str, Any]:
        """The summary's parts that are not per-team figures (the dataset, the options)."""
        return {
            "complete": complete,
            "dataset": {"spec": self.dataset.spec, "name": self.dataset.name,
                        "items": len(self.dataset.items), "source_items": self.dataset.total},
            "options": {"concurrency": self.options.concurrency,
                        "item_timeout_s": self.options.item_timeout_s,
                        "memory": self.options.memory, "seed": self.options.seed,
                        "answer_format": self.options.answer_format,
                        "tolerance": self.options.tolerance,
                        "requeue_rounds": self.options.requeue_rounds,
                        "requeue_backoff_s": self.options.requeue_backoff_s,
                        "reveal_reference": self.options.reveal_reference},
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    def team_descriptions(self) -> list[dict[str, Any]]:
        """Each team as the summary names it, before its figures: what it is, how graded."""
        return [{
            "name": slot.team.name,
            "source": slot.team.source,
            "strategy": slot.team.spec.strategy.name,
            "content_hash": slot.hash,
            "model": slot.team.spec.model,
            "grader": slot.grader.id,
            "checks_reference": slot.checks_reference,
            "saw_reference": slot.sees_reference,
        } for slot in self.slots]

    def cooling(self, index: int) -> list[str]:
        """What pauses team ``index`` now: ``"model cooling down 12 s"`` per open breaker.

        For progress bars; safe to call from their refresh thread while the run goes.
        """
        if self._breakers is None:
            return []
        models = self.slots[index].models()
        return [f"{model} cooling down {left:.0f} s" if left >= 0.5 else f"{model} probing"
                for model, left in self._breakers.cooling() if model in models]

    def write_summary(self, *, complete: bool | None = None) -> dict[str, Any]:
        """Write ``summary.json`` atomically (a reader never sees half a file) and return it."""
        summary = self.summary(complete=complete)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.summary_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", "utf-8")
        os.replace(temporary, self.summary_path)
        if self.store is not None:
            self.store.finish(self, summary)
        return summary


def summary_of(head: dict[str, Any], teams: Sequence[dict[str, Any]],
               records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A summary from its head, its teams' descriptions and each team's records.

    The one place ``summary.json`` is assembled: :meth:`Evaluation.summary` calls it
    with what is on disk, ``concilium evals show`` with what is in SQL. ``head`` is
    :meth:`Evaluation.head` (``complete`` ``None``: all selected items done).
    """
    total = head["dataset"]["items"]
    rows = [{**team, **summarize_team(records.get(team["name"], []), total)} for team in teams]
    complete = head["complete"]
    if complete is None:
        complete = all(t["done"] == total for t in rows)
    # paired on what both teams answered: an outage of one is not the other's win
    outcomes = {name: {r["item"]: bool(r.get("correct")) for r in team_records
                       if r.get("status") in COMPLETED}
                for name, team_records in records.items()}
    return _masked({
        "complete": complete,
        "dataset": head["dataset"],
        "options": head["options"],
        "started_at": head["started_at"],
        "finished_at": head["finished_at"],
        "teams": rows,
        "comparisons": compare(outcomes),
    })


_ERROR_TYPE = re.compile(r": ([A-Za-z_]\w*)(?::|$)")


def _transient(record: dict[str, Any]) -> bool:
    """A ``failed`` run whose every listed model error is transient (see TRANSIENT_ERRORS).

    The run's error is the model door's ``all models failed: m: Type: text | ...``;
    a refusal, a bad request or a missing key fails the same way every time.
    """
    error = record.get("error") or ""
    if record.get("status") != "failed" or not error.startswith("all models failed:"):
        return False
    parts = error.split(":", 1)[1].split(" | ")
    types = [match.group(1) if (match := _ERROR_TYPE.search(part)) else "" for part in parts]
    return bool(types) and all(t in TRANSIENT_ERRORS for t in types)


_freezes = 0
"""Evaluations of this process running inside :func:`_quiet_collector` (the outermost
restores the collector)."""
_thresholds: tuple[int, int, int] | None = None
YOUNG_THRESHOLD = 10_000
"""Allocations (net of frees) between two collections of the youngest generation while an
evaluation runs; CPython's default is 700."""


@contextlib.contextmanager
def _quiet_collector() -> Iterator[None]:
    """Keep the cyclic garbage collector out of the evaluation's way while it runs.

    Why (issue #17, at 0.1 s per call the collector took ~10 % of the event loop):

    - what exists when the evaluation starts (modules, the teams' compiled graphs, the
      open databases) lives as long as it: ``gc.freeze`` takes it out of the collector's
      full passes, each of which walked every object of the process (a 0.1-0.2 s stall);
    - a run's objects die by reference counting, but its bursts of allocations set off a
      young collection every 700 of them (~150 per 300 runs); at ``YOUNG_THRESHOLD``
      a few remain, and cyclic garbage waits at most that many allocations longer.

    At the end the heap is thawed and the thresholds restored, so nothing that dies
    during the evaluation stays uncollected after it.
    """
    import gc

    global _freezes, _thresholds
    if _freezes == 0:  # (garbage frozen with the rest is collected after the thaw)
        gc.freeze()
        _thresholds = gc.get_threshold()
        gc.set_threshold(max(_thresholds[0], YOUNG_THRESHOLD), *_thresholds[1:])
    _freezes += 1
    try:
        yield
    finally:
        _freezes -= 1
        if _freezes == 0:
            if _thresholds is not None:
                gc.set_threshold(*_thresholds)
            gc.unfreeze()


async def _later(delay_s: float, put: Callable[[_Job], None], job: _Job) -> None:
    await asyncio.sleep(delay_s)
    put(job)


def _masked(value: Any) -> Any:
    """``value`` with this process's secrets masked in every string (as a run masks a task)."""
    from concilium.secrets import mask_known, secret_values

    secrets = secret_values()
    if not secrets:
        return value

    def mask(item: Any) -> Any:
        if isinstance(item, str):
            return mask_known(item, secrets)
        if isinstance(item, dict):
            return {k: mask(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return type(item)(mask(v) for v in item)
        return item

    return mask(value)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left unfinished by a hard kill, so the file is whole JSONL again."""
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        position = size
        while position > 0:
            step = min(4096, position)
            handle.seek(position - step)
            chunk = handle.read(step)
            if position == size and chunk.endswith(b"\n"):
                return
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                handle.truncate(position - step + newline + 1)
                return
            position -= step
        handle.truncate(0)
