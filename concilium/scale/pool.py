"""A pool of warm Ray actors that run team items; the driver only routes and counts.

Each actor is one process that imports litellm once when its teams call through it
(and loads a local model once, on its first call) and runs up to ``concurrency``
items at a time on its own event loop (an async actor with ``max_concurrency``). The driver keeps at
most ``concurrency`` items in flight per actor (back-pressure: an item goes to
the least-busy actor with a free slot, else waits), so a slow actor is never
buried under a queue. The ledger, checkpoints and lessons are written by the
actors to the shared database; a killed actor is restarted by Ray and its
in-flight items retried (``max_restarts``, ``max_task_retries``), and each item's
run id is fixed, so a retried item resumes its run and lands once.

Example:
    >>> connect("auto")
    >>> pool = Pool(BatchJob(team, team_hash, seed=0), workers=2, concurrency=8)
    >>> record = await pool.call("batch_task", task)
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError

__all__ = ["BatchJob", "EvalJob", "Pool", "check_database", "connect", "ray_module"]

RESTARTS = 3
"""How often Ray restarts a dead actor, and retries the items it had in flight."""


def ray_module() -> Any:
    """Ray, or one clear error saying which extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'concilium[ray]'") from None
    return ray


def connect(address: str = "auto", **init: Any) -> Any:
    """Join a Ray cluster: ``auto`` joins ``RAY_ADDRESS`` or starts a local one.

    ``ray://host:10001`` (or any address ``ray.init`` takes) names a cluster. Our
    ``CONCILIUM_*`` settings go to the workers, so they use the same database and
    Redis as the driver. Keyword arguments go to ``ray.init`` (tests keep it small).
    """
    ray = ray_module()
    if ray.is_initialized():
        return ray
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or ""
    env = {k: v for k, v in os.environ.items() if k.startswith("CONCILIUM_")}
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "runtime_env": {"env_vars": env}, **init}
    if address:
        options["address"] = address
    try:
        ray.init(**options)
    except ConnectionError as error:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {error}") from None
    return ray


def check_database(url: str | None = None) -> None:
    """Refuse SQLite on a cluster of more than one node: each node would have its own file."""
    ray = ray_module()
    from concilium.settings import get_settings

    url = url or get_settings().sqlalchemy_url()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and url.startswith("sqlite"):
        raise ConfigError(
            f"the Ray cluster has {len(nodes)} nodes but the database is SQLite ({url}): each "
            "node would keep its own ledger. Set CONCILIUM_DATABASE_URL to a PostgreSQL "
            "database every node reaches, e.g. postgresql+psycopg://user@db-host/concilium")


def portable(team: Any) -> tuple[Any, str | None]:
    """A team as its spec and source: a worker builds its own ``Team`` (and graph) from it.

    A team that has run holds a compiled graph whose sentinels would not survive a
    pickle (LangGraph compares them by identity), so graphs never travel.
    """
    return team.spec, team.source


def rebuilt(spec: Any, source: str | None) -> Any:
    from concilium.team import Team

    return Team(spec, source=source)


@dataclass
class BatchJob:
    """What a batch worker needs: the team and how to run each task."""

    team: Any
    team_hash: str
    seed: int = 0
    timeout_s: float | None = None

    def __reduce__(self) -> Any:
        return _batch_job, (portable(self.team), self.team_hash, self.seed, self.timeout_s)


def _batch_job(team: tuple[Any, str | None], *args: Any) -> BatchJob:
    return BatchJob(rebuilt(*team), *args)


@dataclass
class EvalJob:
    """What an eval worker needs to build its own copy of the evaluation."""

    teams: list[Any]
    dataset: Any
    options: Any

    def __reduce__(self) -> Any:
        return _eval_job, ([portable(t) for t in self.teams], self.dataset, self.options)


def _eval_job(teams: list[tuple[Any, str | None]], dataset: Any, options: Any) -> EvalJob:
    return EvalJob([rebuilt(*t) for t in teams], dataset, options)


class Worker:
    """One warm process: litellm imported once (if a team needs it), items run concurrently
    on its event loop."""

    def __init__(self, job: BatchJob | EvalJob) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from concilium.agents.llm import warm_litellm

        warm_litellm(t.spec for t in (job.teams if isinstance(job, EvalJob) else [job.team]))
        self.job = job
        self.evaluation: Any = None
        if isinstance(job, EvalJob):
            from concilium.eval.runner import Evaluation

            # records come back to the driver, which writes items.jsonl; nothing is written here
            scratch = Path(tempfile.gettempdir()) / f"concilium-worker-{os.getpid()}"
            self.evaluation = Evaluation(job.teams, job.dataset, scratch, job.options)

    def pid(self) -> int:
        """This actor's process id (tests kill it)."""
        return os.getpid()

    def node(self) -> str:
        """The id of the Ray node this actor runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    async def batch_task(self, task: Any) -> dict[str, Any]:
        from concilium.scale.tasks import run_task

        job = self.job
        record = await run_task(job.team, job.team_hash, task, seed=job.seed,
                                timeout_s=job.timeout_s)
        await _flushed()
        return record

    async def eval_item(self, index: int, position: int, item: Any) -> dict[str, Any]:
        record = await self.evaluation.run_item(index, position, item)
        await _flushed()
        return record


async def _flushed() -> None:
    """The item's ledger rows are in the shared database before the driver hears of it."""
    from concilium.memory.ledger import flush

    await asyncio.to_thread(flush, 30.0)


@dataclass
class WorkerStats:
    """Driver-side counts of one actor (per-worker throughput on the progress bar)."""

    in_flight: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Items per second since the pool started."""
        return self.done / max(1e-9, time.monotonic() - self.started)


class Pool:
    """``workers`` warm actors, each with at most ``concurrency`` items in flight."""

    def __init__(self, job: BatchJob | EvalJob, *, workers: int = 2,
                 concurrency: int = 4) -> None:
        ray = ray_module()
        if workers < 1:
            raise ConfigError(f"--workers must be 1 or more, not {workers}")
        if concurrency < 1:
            raise ConfigError(f"--concurrency must be 1 or more, not {concurrency}")
        cpus = ray.cluster_resources().get("CPU", 0)
        if workers > cpus:
            raise ConfigError(f"--workers {workers} needs {workers} CPUs; the Ray cluster has "
                              f"{cpus:g}")
        check_database()
        actor = ray.remote(Worker).options(
            num_cpus=1, max_concurrency=concurrency, max_restarts=RESTARTS,
            max_task_retries=RESTARTS, scheduling_strategy="SPREAD")
        self.ray = ray
        self.concurrency = concurrency
        self.actors = [actor.remote(job) for _ in range(workers)]
        self.stats = [WorkerStats() for _ in range(workers)]
        self._slot = asyncio.Condition()

    @property
    def capacity(self) -> int:
        """Items the pool runs at once."""
        return len(self.actors) * self.concurrency

    async def ready(self) -> None:
        """Wait until every actor is up (its imports done), so timing starts warm."""
        await asyncio.gather(*(a.pid.remote() for a in self.actors))

    async def pids(self) -> list[int]:
        return list(await asyncio.gather(*(a.pid.remote() for a in self.actors)))

    async def call(self, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` on the least-busy actor with a free slot; cancel = Ray cancel."""
        async with self._slot:
            await self._slot.wait_for(
                lambda: min(s.in_flight for s in self.stats) < self.concurrency)
            index = min(range(len(self.stats)), key=lambda i: self.stats[i].in_flight)
            self.stats[index].in_flight += 1
        ref = getattr(self.actors[index], method).remote(*args)
        try:
            result = await ref
            self.stats[index].done += 1
            return result
        except asyncio.CancelledError:
            self.ray.cancel(ref)  # Ctrl-C: the item stops on its worker too
            raise
        finally:
            async with self._slot:
                self.stats[index].in_flight -= 1
                self._slot.notify_all()

    def shutdown(self) -> None:
        """End the actors (their queued ledger writes are flushed by the runs themselves)."""
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
