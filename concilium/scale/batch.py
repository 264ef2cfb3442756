"""``Batch``: one team over a JSONL of tasks into a JSONL of results; resumable.

The driver reads what is done from the output file, hands each pending task to
an executor (in this process, or a Ray pool), appends each record as it arrives
(flushed at once: a kill loses nothing finished), and stops cleanly on Ctrl-C.

Example:
    >>> batch = Batch(load_team("gvr.yaml"), Path("tasks.jsonl"), Path("answers.jsonl"))
    >>> await batch.run()
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError
from concilium.scale.tasks import FINAL, Task, read_done, read_tasks, run_task

__all__ = ["Batch", "BatchOptions", "Executor"]

Executor = Callable[[Task], Awaitable[dict[str, Any]]]
"""Runs one task to its output record (in this process or on a worker)."""


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs. Frozen: one batch, one set of options."""

    concurrency: int = 4
    """Tasks in flight at once (in this process; per worker on Ray)."""
    seed: int = 0
    """Base sampling seed of every run."""
    item_timeout_s: float | None = None
    """Wall-clock limit of one task (``None``: only the team's own limits)."""


class Batch:
    """``team`` over the tasks of ``input_path``, appending records to ``output_path``."""

    def __init__(self, team: Any, input_path: Path, output_path: Path,
                 options: BatchOptions = BatchOptions()) -> None:
        if options.concurrency < 1:
            raise ConfigError(f"--concurrency must be 1 or more, not {options.concurrency}")
        if options.item_timeout_s is not None and options.item_timeout_s <= 0:
            raise ConfigError(f"--timeout must be positive, not {options.item_timeout_s}")
        if Path(input_path).resolve() == Path(output_path).resolve():
            raise ConfigError("--output must not be the --input file")
        self.team = team
        self.team_hash: str = team.spec.content_hash()
        self.input_path = Path(input_path)
        self.output_path = Path(output_path)
        self.options = options
        self.tasks = read_tasks(self.input_path)
        self.done: dict[str, dict[str, Any]] = {}
        self.pending: list[Task] = []
        self.load()

    def load(self) -> None:
        """What the output file already holds: done ids are skipped, others get a new attempt."""
        self.done, tries = read_done(self.output_path, self.team_hash)
        self.pending = [replace(t, attempt=tries.get(t.id, 0)) for t in self.tasks
                        if t.id not in self.done]

    async def run_local(self, task: Task) -> dict[str, Any]:
        """The in-process executor: the same runner a Ray worker calls."""
        return await run_task(self.team, self.team_hash, task, seed=self.options.seed,
                              timeout_s=self.options.item_timeout_s)

    async def run(self, executor: Executor | None = None, *, workers: int | None = None,
                  on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Run every pending task; ``workers`` tasks in flight (default: ``concurrency``)."""
        execute = executor or self.run_local
        if executor is None:
            from concilium.agents.llm import warm_litellm

            # pay the import once, before the first task's clock starts (if it is needed)
            warm_litellm([self.team.spec])
        if self.pending:
            await prepare_database()
        queue: asyncio.Queue[Task] = asyncio.Queue()
        for task in self.pending:
            queue.put_nowait(task)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.output_path)
        with self.output_path.open("a", encoding="utf-8") as handle:

            async def worker() -> None:
                while not queue.empty():
                    record = await execute(queue.get_nowait())
                    handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                    handle.flush()
                    if record.get("status") in FINAL:
                        self.done[str(record["id"])] = record
                    if on_record is not None:
                        on_record(record)

            lanes = min(workers or self.options.concurrency, queue.qsize())
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(lanes):
                        group.create_task(worker())
            except* ConfigError as failures:
                raise failures.exceptions[0] from None
        self.pending = [t for t in self.pending if t.id not in self.done]


async def prepare_database() -> None:
    """Create the ledger and checkpoint tables once, before tasks (or workers) start.

    Many first runs at once would each create them, and concurrent ``CREATE TABLE``
    on a fresh PostgreSQL schema fails (a duplicate ``pg_type`` row).
    """
    from concilium.memory import Memory
    from concilium.run.checkpoints import open_checkpointer

    await asyncio.to_thread(Memory.open)
    async with open_checkpointer():
        pass


def _drop_torn_tail(path: Path) -> None:
    """Cut an unfinished last line (a hard kill mid-write) so appends start on a new line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("rb+") as handle:
            handle.truncate(data.rfind(b"\n") + 1)
