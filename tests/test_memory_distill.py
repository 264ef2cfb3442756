"""Distillation: recurring lessons become one behavior each, and never twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from memory_fixtures import REDIS_TEST_URL, db_url, memory, redis_prefix  # noqa: F401
from sqlalchemy import select

from concilium.agents.providers import scripted
from concilium.memory.models import Reflection
from concilium.memory.store import Memory
from concilium.run.distill import distill, group_lessons, parse_behavior

PENCIL_LESSONS = [
    "Multiply the pencil price by the number of pencils before adding the bag.",
    "For pencils, multiply price by count first, then add the bag.",
    "Compute the pencils' total price by multiplying, then add the bag price.",
    "Multiply price and number of pencils first; add the bag price last.",
]
TRAIN_LESSONS = [
    "Train distance is speed multiplied by the hours travelled.",
    "For a train, hours travelled times speed gives the distance.",
    "Distance of the train: multiply its speed by the travelled hours.",
]
BEHAVIOR = "NAME: Multiply before adding\nPROCEDURE: Multiply price by count, then add extras."


def fill(memory: Memory, namespace: str = "shop") -> None:  # noqa: F811
    for lesson in PENCIL_LESSONS:
        memory.remember(lesson, task="How much do 24 pencils and a bag cost?",
                        namespace=namespace, outcome="failure", verified_by="ground_truth")
    for lesson in TRAIN_LESSONS:
        memory.remember(lesson, task="How far does the train go?", namespace=namespace,
                        outcome="failure", verified_by="tool")
    memory.remember("Read the question twice.", task="Something else entirely",
                    namespace=namespace, outcome="failure", verified_by="tool")


def test_parse_behavior_copes_with_any_reply() -> None:
    assert parse_behavior(BEHAVIOR, []) == (
        "Multiply before adding", "Multiply price by count, then add extras.")
    name, procedure = parse_behavior("Just multiply first and add later.", ["x"])
    assert procedure == "Just multiply first and add later." and name.startswith("Just")
    assert parse_behavior("", ["long lesson here", "short"]) == ("short", "short")


async def test_distill_groups_recurring_lessons_once(memory: Memory) -> None:  # noqa: F811
    fill(memory)
    with memory.db.session() as session:
        groups = group_lessons(session.execute(select(Reflection)).scalars().all())
    assert sorted(len(g) for g in groups)[-2:] == [3, 4]
    replies = {"distiller": [BEHAVIOR, "NAME: Speed times time\nPROCEDURE: d = v * t."]}
    with scripted.use("distil", scripted.Script(replies)) as script:
        made = await distill(memory, namespace="shop", model="scripted/distil")
        assert script.count("distiller") == 2
        assert "Multiply the pencil price" in script.calls[0].text
        again = await distill(memory, namespace="shop", model="scripted/distil")
    assert again == []
    assert [(b.name, len(b.sources)) for b in made] == [("Multiply before adding", 4),
                                                        ("Speed times time", 3)]
    stored = memory.behaviors("shop")
    assert [b.procedure for b in stored] == ["Multiply price by count, then add extras.",
                                             "d = v * t."]
    assert {r.lesson for r in stored[0].sources} == set(PENCIL_LESSONS)
    assert memory.behaviors("elsewhere") == []


DISTILLER = """
import asyncio, sys
from concilium.run.distill import distill
from concilium.memory.store import Memory
memory = Memory.open(sys.argv[1])
from concilium.agents.providers import scripted
made = asyncio.run(distill(memory, namespace="shop", model="scripted/slow"))
print(len(made), scripted.get("slow").count())
"""


def race(
    url: str, tmp_path: Path, redis_url: str | None, prefix: str | None
) -> list[tuple[int, int]]:
    """Two processes distil at once; each says ``(behaviors made, model calls made)``."""
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "slow.yaml").write_text(yaml.safe_dump({"latency_s": 0.4, "default": BEHAVIOR}))
    env = {**os.environ, "CONCILIUM_SCRIPTS_DIR": str(scripts),
           "CONCILIUM_HOME": str(tmp_path / "home")}
    env.pop("CONCILIUM_REDIS_URL", None)
    if redis_url is not None:
        env.update(CONCILIUM_REDIS_URL=redis_url, CONCILIUM_REDIS_PREFIX=prefix or "")
    procs = [subprocess.Popen([sys.executable, "-c", DISTILLER, url], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        made, calls = out.split()[-2:]
        counts.append((int(made), int(calls)))
    return counts


def test_two_processes_never_distill_the_same_behaviors_twice(
    memory: Memory, db_url: str, tmp_path: Path  # noqa: F811
) -> None:
    fill(memory)
    # One process distilled (two model calls); the other waited for its lock, then found
    # nothing left to distil, so it did not even call the model.
    assert sorted(race(db_url, tmp_path, None, None)) == [(0, 0), (2, 2)]
    assert len(memory.behaviors("shop")) == 2


@pytest.mark.redis
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_redis_lock_keeps_distillers_apart(
    memory: Memory, db_url: str, tmp_path: Path, redis_prefix: str  # noqa: F811
) -> None:
    fill(memory)
    assert sorted(race(db_url, tmp_path, REDIS_TEST_URL, redis_prefix)) == [(0, 0), (2, 2)]
    assert len(memory.behaviors("shop")) == 2
