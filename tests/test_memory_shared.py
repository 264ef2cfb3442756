"""Two processes, one memory (issue 13): a lesson one team learns in one process is
recalled by another team naming the same namespace in another, concurrent process,
through Redis's versioned hot set; with Redis stopped, through SQL alone.

The processes are ``tests/memory_worker.py``, driven line by line; Redis is a server
of this test's own (``tests/redis_server.py``) so the test can stop it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from redis_server import RedisServer, redis_server  # noqa: F401 - a fixture

WORKER = Path(__file__).with_name("memory_worker.py")
TASK = "A shop sells pencils at 17 cents each. How much do 24 pencils cost, plus a 3 cent bag?"
WRONG = "17 + 24 = 41.\nAnswer: 41"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
WRITER = {
    "name": "writer",
    "strategy": "single",
    "roles": {"generator": {}},
    "memory": {"namespace": "shared", "remember": "on_failure"},
}
READER = {
    "name": "reader",
    "strategy": "single",
    "roles": {"generator": {}},
    "memory": {"namespace": "shared"},
}


class Worker:
    """A worker process and its command line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()  # blocks until it answers or dies
        if not line:
            assert self.process.stderr is not None
            raise AssertionError(f"the worker died: {self.process.stderr.read()[-3000:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.ask_quit()
        self.process.wait(60)

    def ask_quit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()


def _learn(writer: Worker, lesson: str) -> int:
    done = writer.ask(
        op="run",
        team=WRITER,
        task=TASK,
        reference="411",
        replies={"generator": [WRONG], "reflector": [f"Lesson: {lesson}"]},
    )
    assert done["correct"] is False and len(done["remembered"]) == 1
    return done["remembered"][0]


def _read(reader: Worker) -> str:
    done = reader.ask(
        op="run", team=READER, task=TASK, reference="411", replies={"generator": [RIGHT]}
    )
    return done["prompts"]["generator"][0]


def test_a_lesson_learned_in_one_process_is_recalled_in_another(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "CONCILIUM_HOME": str(tmp_path / "home"),
        "CONCILIUM_DATABASE_URL": f"sqlite:///{(tmp_path / 'shared.db').as_posix()}",
        "CONCILIUM_REDIS_URL": redis_server.url,
        "CONCILIUM_REDIS_PREFIX": "shared-test:",
        "CONCILIUM_CHECKPOINT": "false",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    writer, reader = Worker(env), Worker(env)
    try:
        # The reader asks first: its (empty) answer is now in Redis's hot set.
        first = reader.ask(op="recall", task=TASK, namespace="shared")
        assert first["lessons"] == [] and first["redis"] and first["misses"] == 1
        second = reader.ask(op="recall", task=TASK, namespace="shared")
        assert second["lessons"] == [] and second["hits"] == 1  # served from Redis

        lesson = "Multiply the price by the count before adding the bag."
        _learn(writer, lesson)
        # The writer's write bumped the namespace's version: the reader's next run misses
        # its cached answer, reads SQL, and its generator sees the lesson.
        assert lesson in _read(reader)
        hot = reader.ask(op="recall", task=TASK, namespace="shared")
        assert hot["lessons"] == [lesson] and hot["hits"] == 2  # cached again, from Redis

        redis_server.stop()  # SQL alone: nothing written meanwhile is lost
        later = "Count the bag once, not per pencil."
        _learn(writer, later)
        prompt = _read(reader)
        assert lesson in prompt and later in prompt
        down = reader.ask(op="recall", task=TASK, namespace="shared")
        assert not down["redis"] and set(down["lessons"]) == {lesson, later}
    finally:
        writer.close()
        reader.close()
