"""The driver side of a scaled run: a Ray pool behind the batch and eval executors.

Without ``--ray`` nothing here imports Ray: batch and eval run in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from concilium.scale.batch import Batch, prepare_database
from concilium.scale.pool import BatchJob, EvalJob, Pool, connect

__all__ = ["drive_batch", "drive_eval"]


async def drive_batch(batch: Batch, *, ray: str | None = None, workers: int = 1,
                      on_record: Callable[[dict[str, Any]], None] | None = None,
                      on_pool: Callable[[Pool], None] | None = None) -> None:
    """Run ``batch``; with ``ray`` (``auto`` or an address) on ``workers`` warm actors."""
    if ray is None:
        await batch.run(on_record=on_record)
        return
    connect(ray)
    await prepare_database()  # once here, not raced by every worker's first run
    job = BatchJob(batch.team, batch.team_hash, batch.options.seed, batch.options.item_timeout_s)
    pool = Pool(job, workers=workers, concurrency=batch.options.concurrency)
    try:
        if on_pool is not None:
            on_pool(pool)
        await pool.ready()
        await batch.run(lambda task: pool.call("batch_task", task), workers=pool.capacity,
                        on_record=on_record)
    finally:
        pool.shutdown()


async def drive_eval(evaluation: Any, teams: list[Any], *, ray: str, workers: int,
                     on_record: Callable[[int, dict[str, Any]], None] | None = None,
                     on_pool: Callable[[Pool], None] | None = None) -> None:
    """Run ``evaluation`` on ``workers`` actors; its ``concurrency`` is spread over them.

    ``teams`` are the teams as given to :class:`Evaluation` (each worker builds its own
    copy of the evaluation from them, so its records are the ones a local run writes).
    """
    connect(ray)
    total = evaluation.options.concurrency
    per_worker = max(1, -(-total // workers))
    job = EvalJob(list(teams), evaluation.dataset, evaluation.options)
    pool = Pool(job, workers=workers, concurrency=per_worker)
    try:
        if on_pool is not None:
            on_pool(pool)
        await pool.ready()

        async def remote(index: int, position: int, item: Any) -> dict[str, Any]:
            record: dict[str, Any] = await pool.call("eval_item", index, position, item)
            return record

        await evaluation.run(on_record, executor=remote)
    finally:
        pool.shutdown()
