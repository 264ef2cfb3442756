"""What travels to a Ray worker: a job pickled the way Ray pickles it (cloudpickle).

No cluster is needed: the worker side is the unpickled job run in this process.
A team that has already run holds a compiled graph whose LangGraph sentinels are
compared by identity; shipped as is, its copy fails every run (InvalidUpdateError).
Jobs therefore carry the team's spec, and the worker builds its own graph.
"""

from __future__ import annotations

import asyncio
import pickle

import pytest

from concilium.agents.providers import scripted
from concilium.agents.providers.scripted import Script
from concilium.scale.pool import BatchJob, EvalJob
from concilium.scale.tasks import Task, run_task
from concilium.team import load_team

cloudpickle = pytest.importorskip("ray.cloudpickle", reason="the ray extra is not installed")

TEAM = {"name": "plus", "strategy": "single", "model": "scripted/plus", "roles": {"generator": {}}}


def test_a_team_that_has_run_still_runs_after_the_trip_to_a_worker() -> None:
    with scripted.use("plus", Script(default="Answer: 2")):
        team = load_team(TEAM)
        assert team.run("What is 1 plus one?", memory=False).answer == "2"  # compiles a graph
        job = pickle.loads(cloudpickle.dumps(BatchJob(team, team.spec.content_hash(), seed=3)))
        assert job.team is not team and job.seed == 3
        assert job.team.spec.content_hash() == team.spec.content_hash()
        record = asyncio.run(run_task(job.team, job.team_hash, Task("a", "What is 1 plus one?"),
                                      memory=False))
        assert (record["status"], record["answer"]) == ("ok", "2"), record["error"]
        shipped = pickle.loads(cloudpickle.dumps(EvalJob([team], None, None)))
        assert shipped.teams[0].run("What is 1 plus one?", memory=False).answer == "2"
