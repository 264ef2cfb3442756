"""Eight processes write reflections at once, to one SQLite file and to PostgreSQL.

They start together on an *empty* database, so they also race to migrate it. Every
row must arrive, none twice: SQLite takes the write lock up front (``BEGIN
IMMEDIATE``) with a long busy timeout, PostgreSQL serialises migrations with an
advisory lock, and every lesson carries its writer's idempotency key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from memory_fixtures import db_url  # noqa: F401
from waiting import wait_for

from concilium.memory.store import Memory

WORKERS = 8
PER_WORKER = 40

WORKER = """
import sys, time
from pathlib import Path
url, worker, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
from concilium.memory.store import Memory
(go.parent / f"ready-{worker}").touch()
deadline = time.monotonic() + 600
while not go.exists():  # the start signal
    if time.monotonic() > deadline:
        sys.exit("no start signal in 600 s")
    time.sleep(0.005)
memory = Memory.open(url, redis_url=False)
for i in range(count):
    memory.remember(f"lesson {i} of worker {worker}: check the pencils", task=f"task {i}",
                    namespace="race", outcome="failure", verified_by="tool",
                    uid=f"w{worker}-{i}")
print("done", worker)
"""


def at_the_line(workers: list[subprocess.Popen[str]], directory: Path) -> None:
    """Wait until every worker has imported everything and waits for the start signal."""
    for w, worker in enumerate(workers):
        wait_for(lambda w=w: (directory / f"ready-{w}").exists(), process=worker,
                 what=f"worker {w} at the start line")


def test_eight_processes_write_every_row_once(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    go = tmp_path / "go"
    env = {**os.environ, "CONCILIUM_HOME": str(tmp_path / "home")}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, db_url, str(w), str(PER_WORKER), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for w in range(WORKERS)
    ]
    at_the_line(workers, tmp_path)
    go.touch()
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr[-2000:]
        assert stdout.startswith("done")
    memory = Memory.open(db_url, redis_url=False)
    rows = list(memory.iter_export(namespace="race"))
    expected = {f"lesson {i} of worker {w}: check the pencils"
                for w in range(WORKERS) for i in range(PER_WORKER)}
    assert len(rows) == WORKERS * PER_WORKER
    assert {r["lesson"] for r in rows} == expected
    assert len({r["id"] for r in rows}) == len(rows)
    # ... and the full-text index saw every one of them, once.
    assert len(memory.search("pencils", namespace="race", limit=1000)) == WORKERS * PER_WORKER


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_concurrent_remember_with_the_same_uid_stores_once(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    go = tmp_path / "go"
    env = {**os.environ, "CONCILIUM_HOME": str(tmp_path / "home")}
    # Every worker writes the same 40 uids: all of them race on the same rows.
    code = WORKER.replace('uid=f"w{worker}-{i}"', 'uid=f"shared-{i}"')
    workers = [
        subprocess.Popen([sys.executable, "-c", code, db_url, str(w), "40", str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for w in range(4)
    ]
    at_the_line(workers, tmp_path)
    go.touch()
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr[-2000:]
    assert Memory.open(db_url, redis_url=False).count("race") == 40
