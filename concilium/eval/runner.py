"""Run teams over a dataset, concurrently, streaming every result to disk; resumable.

Layout of an output directory:

- ``items.jsonl`` — one JSON record per (team, item) as each finishes, flushed
  at once, so Ctrl-C (or a crash) leaves every finished item on disk and at
  worst one torn last line, which the next run cuts off;
- ``summary.json`` — per-team accuracy (a fraction) with its Wilson interval,
  calls, tokens, cost, latency percentiles and flips, plus paired McNemar
  comparisons; ``"complete": false`` when the run was interrupted.

A record is keyed by the team's content hash (``--model`` changes it), the
item's key and the memory mode (``off``, ``read``, ``learn`` are separate
experiments). Rerunning the same command skips every (team, item) that already
has a final outcome (``ok``, ``stopped``, ``timeout``); ``failed`` (a model
failed after its retries) and ``error`` items are tried again. Retries of single
calls belong to the model layer (the team's ``retry:``), never to this runner.
Records graded under other grader settings are regraded from their stored reply,
without calling a model.

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
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from concilium.errors import ConfigError
from concilium.eval.datasets import Dataset, Item
from concilium.eval.graders import Grader, grader_for
from concilium.eval.stats import compare, summarize_team

__all__ = [
    "FINAL_STATUSES",
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "EvalOptions",
    "Evaluation",
    "MemoryMode",
    "Tally",
]

RESULTS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
FINAL_STATUSES = frozenset({"ok", "stopped", "timeout"})
"""Outcomes a rerun keeps; any other status is run again."""

MemoryMode = Literal["off", "read", "learn"]


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


@dataclass
class Tally:
    """Live counts of one team, for progress bars."""

    team: str
    total: int
    done: int = 0
    correct: int = 0
    tokens: int = 0
    cost: float = 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.done if self.done else None

    def add(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.correct += bool(record.get("correct"))
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
class _Slot:
    """One team of the evaluation with what grades it."""

    team: Any
    hash: str
    grader: Grader
    tally: Tally
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    """item key -> latest record."""


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
            self.slots.append(_Slot(_with_memory_mode(team, options.memory),
                                    team.spec.content_hash(), grader,
                                    Tally(team.name, len(dataset.items))))
        self.skipped_lines = 0
        self.started_at = time.time()
        self.finished_at: float | None = None
        self._file: IO[str] | None = None
        self._loaded = False
        self._memory: Any = False
        """What every run gets as ``memory=``: ``False`` (off) or the opened store."""
        self._executor: Callable[[int, int, Item], Awaitable[dict[str, Any]]] = self.run_item

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
        an interrupted run still compares teams on the same items. ``executor(team_index,
        position, item)`` runs one item elsewhere (a Ray worker calling :meth:`run_item`
        on its own copy of this evaluation); the default is :meth:`run_item` here.
        """
        self._executor = executor or self.run_item
        from concilium.agents.llm import litellm_module

        litellm_module()  # pay the import before the first item's clock starts, not during it
        if self.options.memory != "off" and self._memory is False:
            from concilium.memory import Memory

            self._memory = await asyncio.to_thread(Memory.open)  # once, and fail before items
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.load()
        pending: asyncio.Queue[tuple[int, int, Item]] = asyncio.Queue()
        for position, item in enumerate(self.dataset.items):
            for index, slot in enumerate(self.slots):
                done = slot.records.get(item.key)
                if done is None or done.get("status") not in FINAL_STATUSES:
                    pending.put_nowait((index, position, item))
        with self._open() as self._file:
            await self._regrade()
            self._retally()
            workers = min(self.options.concurrency, pending.qsize())
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(self._worker(pending, on_record))
            except* ConfigError as failures:
                raise failures.exceptions[0] from None
        self.finished_at = time.time()

    async def _worker(
        self,
        pending: asyncio.Queue[tuple[int, int, Item]],
        on_record: Callable[[int, dict[str, Any]], None] | None,
    ) -> None:
        while not pending.empty():
            index, position, item = pending.get_nowait()
            record = await self._executor(index, position, item)
            self._keep(index, record)
            self.slots[index].tally.add(record)
            if on_record is not None:
                on_record(index, record)

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

    def _keep(self, index: int, record: dict[str, Any]) -> None:
        slot = self.slots[index]
        self._write(record)
        slot.records[record["item"]] = record

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
                if owner is not None and record.get("item") in wanted:
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
        records = self.records()
        total = len(self.dataset.items)
        teams = []
        for slot in self.slots:
            spec = slot.team.spec
            teams.append({
                "name": slot.team.name,
                "source": slot.team.source,
                "strategy": spec.strategy.name,
                "content_hash": slot.hash,
                "model": spec.model,
                "grader": slot.grader.id,
                **summarize_team(records[slot.team.name], total),
            })
        if complete is None:
            complete = all(t["done"] == total for t in teams)
        outcomes = {name: {r["item"]: bool(r.get("correct")) for r in rows}
                    for name, rows in records.items()}
        return {
            "complete": complete,
            "dataset": {"spec": self.dataset.spec, "name": self.dataset.name,
                        "items": total, "source_items": self.dataset.total},
            "options": {"concurrency": self.options.concurrency,
                        "item_timeout_s": self.options.item_timeout_s,
                        "memory": self.options.memory, "seed": self.options.seed,
                        "answer_format": self.options.answer_format,
                        "tolerance": self.options.tolerance},
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "teams": teams,
            "comparisons": compare(outcomes),
        }

    def write_summary(self, *, complete: bool | None = None) -> dict[str, Any]:
        """Write ``summary.json`` atomically (a reader never sees half a file) and return it."""
        summary = self.summary(complete=complete)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.summary_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", "utf-8")
        os.replace(temporary, self.summary_path)
        return summary


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
