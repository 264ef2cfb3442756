"""Scale-out: one team over many tasks (``concilium batch``), here or on a Ray cluster.

Ray is optional (``pip install 'concilium[ray]'``); without it everything runs in
this process. See :mod:`concilium.scale.pool` for the actor pool.
"""

from __future__ import annotations

from concilium.scale.batch import Batch, BatchOptions
from concilium.scale.tasks import Task, read_tasks, run_task, task_run_id

__all__ = ["Batch", "BatchOptions", "Task", "read_tasks", "run_task", "task_run_id"]
