"""The reflection store on real SQLite and PostgreSQL: schema, remember, recall, forget, export."""

from __future__ import annotations

import io
import json

import pytest
from memory_fixtures import db_url, memory, pg_url, sqlite_url  # noqa: F401
from sqlalchemy import inspect, text

from concilium.memory.db import current_revision, head_revision, migrate, open_database
from concilium.memory.store import Memory, coverage, query_terms

PENCILS = "A shop sells pencils at 17 cents each. How much do 24 pencils cost?"
PENCILS_2 = "A store sells pencils at 18 cents each. How much do 25 pencils cost in total?"
TRAINS = "A train leaves at 3 pm travelling 60 km per hour. How far has it gone by 7 pm?"
LESSON = "Multiply the unit price by the count before adding anything else."
TRAIN_LESSON = "Distance is speed times the hours elapsed between the two clock times."


def test_the_head_read_from_the_files_is_alembics() -> None:
    """``head_revision`` reads the migration files without alembic (start-up time)."""
    from alembic.script import ScriptDirectory

    from concilium.memory.db import _alembic_config

    head_revision.cache_clear()
    assert head_revision() == ScriptDirectory.from_config(_alembic_config()).get_current_head()


def test_schema_migrates_up_from_empty(db_url: str) -> None:  # noqa: F811
    db = open_database(db_url)
    tables = set(inspect(db.engine).get_table_names())
    assert {"runs", "steps", "reflections", "behaviors", "behavior_sources"} <= tables
    assert current_revision(db.engine) == head_revision()
    migrate(db.engine)  # again: nothing to do, nothing breaks
    assert current_revision(db.engine) == head_revision()
    with db.session() as session:
        if db.dialect == "sqlite":
            fts = session.execute(text("SELECT name FROM sqlite_master WHERE name = "
                                       "'reflections_fts'")).scalar()
            assert fts == "reflections_fts"
        else:
            column = session.execute(text(
                "SELECT data_type FROM information_schema.columns WHERE table_name = "
                "'reflections' AND column_name = 'tsv' AND table_schema = current_schema()"
            )).scalar()
            assert column == "tsvector"


def test_recall_returns_the_relevant_lesson_not_an_unrelated_one(memory: Memory) -> None:  # noqa: F811
    pencils = memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="failure",
                              verified_by="ground_truth")
    trains = memory.remember(TRAIN_LESSON, task=TRAINS, namespace="shop", outcome="failure",
                             verified_by="ground_truth")
    found = memory.recall(PENCILS_2, namespace="shop", k=3)
    assert [lesson.id for lesson in found] == [pencils]
    assert found[0].lesson == LESSON and found[0].score > 0
    assert [x.id for x in memory.recall("How far does a train go in 4 hours?",
                                        namespace="shop")] == [trains]
    assert memory.recall("Completely different words here", namespace="shop") == []


def test_namespaces_do_not_leak(memory: Memory) -> None:  # noqa: F811
    mine = memory.remember(LESSON, task=PENCILS, namespace="team-a", outcome="failure",
                           verified_by="ground_truth")
    memory.remember("Team B's lesson on pencils.", task=PENCILS, namespace="team_a",
                    outcome="failure", verified_by="ground_truth")
    memory.remember("Team C's lesson on pencils.", task=PENCILS, namespace="team a",
                    outcome="failure", verified_by="ground_truth")
    assert [x.id for x in memory.recall(PENCILS_2, namespace="team-a", k=5)] == [mine]
    assert memory.recall(PENCILS_2, namespace="team-b") == []
    assert {x.namespace for x in memory.search("pencils")} == {"team-a", "team_a", "team a"}


def test_a_lesson_from_an_unverified_run_is_not_recalled_by_default(memory: Memory) -> None:  # noqa: F811
    by_llm = memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="failure",
                             verified_by="llm")
    nobody = memory.remember("Pencils are sold in packs.", task=PENCILS, namespace="shop",
                             outcome="failure", verified_by=None)
    assert memory.recall(PENCILS_2, namespace="shop") == []
    assert memory.get(by_llm).checked is False  # type: ignore[union-attr]
    everything = memory.recall(PENCILS_2, namespace="shop", verified_only=False)
    assert {x.id for x in everything} == {by_llm, nobody}
    tool = memory.remember("Check each product with a calculator.", task=PENCILS,
                           namespace="shop", outcome="failure", verified_by="tool")
    assert [x.id for x in memory.recall(PENCILS_2, namespace="shop")] == [tool]


def test_usefulness_and_trust_rank_lessons_of_equal_relevance(memory: Memory) -> None:  # noqa: F811
    first = memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="failure",
                            verified_by="tool")
    second = memory.remember(LESSON + " Always.", task=PENCILS, namespace="shop",
                             outcome="failure", verified_by="tool")
    memory.record_use([first], correct=False)
    memory.record_use([first], correct=False)
    memory.record_use([second], correct=True)
    ranked = memory.recall(PENCILS_2, namespace="shop", k=2)
    assert [x.id for x in ranked] == [second, first]
    assert ranked[0].use_count == 1 and ranked[0].success_count == 1
    assert ranked[1].failure_count == 2 and ranked[1].usefulness == 0.25
    truth = memory.remember(LESSON + " Truly.", task=PENCILS, namespace="shop",
                            outcome="failure", verified_by="ground_truth")
    # Checked by ground truth beats a tool, but a record of helping beats both.
    assert [x.id for x in memory.recall(PENCILS_2, namespace="shop", k=3)] == [
        second, truth, first
    ]


def test_remember_is_idempotent_per_uid_and_validates(memory: Memory) -> None:  # noqa: F811
    one = memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="failure",
                          verified_by="tool", uid="same-write")
    two = memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="failure",
                          verified_by="tool", uid="same-write")
    assert one == two and memory.count("shop") == 1
    with pytest.raises(ValueError, match="outcome must be one of"):
        memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="meh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="verified_by must be one of"):
        memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="failure",
                        verified_by="vibes")
    with pytest.raises(ValueError, match="empty lesson"):
        memory.remember("  ", task=PENCILS, namespace="shop", outcome="failure")


def test_forget_and_export(memory: Memory) -> None:  # noqa: F811
    a = memory.remember(LESSON, task=PENCILS, namespace="shop", outcome="failure",
                        verified_by="tool", run_id=None, team="t", model="m")
    b = memory.remember(TRAIN_LESSON, task=TRAINS, namespace="trains", outcome="success",
                        verified_by="ground_truth")
    buffer = io.StringIO()
    assert memory.export(buffer) == 2
    rows = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [r["id"] for r in rows] == [a, b]
    assert rows[0]["verified_by"] == "tool" and rows[0]["team"] == "t" and rows[0]["checked"]
    assert memory.forget([a]) == 1
    assert memory.recall(PENCILS_2, namespace="shop") == []
    assert memory.forget(namespace="trains") == 1 and memory.count() == 0
    with pytest.raises(ValueError, match="say what to forget"):
        memory.forget()


def test_recall_survives_awkward_text(memory: Memory) -> None:  # noqa: F811
    weird = 'He said "AND" OR NOT (x) * NEAR(a b) : col - ^ {braces} \' ; DROP TABLE runs; --'
    lesson = memory.remember("Quote-heavy tasks are still data.", task=weird, namespace="odd",
                             outcome="failure", verified_by="tool")
    assert [x.id for x in memory.recall(weird, namespace="odd")] == [lesson]
    assert memory.recall("", namespace="odd") == []
    assert memory.recall("the and of", namespace="odd") == []  # only stop words
    unicode = memory.remember("Ünïcode lessons work.", task="Zähle die Äpfel im Korb",
                              namespace="ödd", outcome="failure", verified_by="tool")
    assert [x.id for x in memory.recall("Wie viele Äpfel?", namespace="ödd")] == [unicode]


def test_query_terms_and_coverage() -> None:
    assert query_terms("What is the total cost of 24 pencils?") == ["cost", "24", "pencils"]
    assert coverage(["pencils", "cost"], "One pencil costs 17 cents") == 1.0
    assert coverage(["train"], "pencils") == 0.0


def test_the_sqlite_path_is_parsed_once_per_url(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run asks for it on the event loop (issue #17: parsing the URL cost more than the
    SQLite lookup it precedes); the answer follows the URL if that ever changes."""
    from concilium.memory import db as dbmod

    database = dbmod.Database(f"sqlite:///{tmp_path / 'a.db'}")
    parses: list[str] = []
    real = dbmod.make_url
    monkeypatch.setattr(dbmod, "make_url", lambda url: parses.append(str(url)) or real(url))
    assert [database.sqlite_path for _ in range(3)] == [tmp_path / "a.db"] * 3
    assert len(parses) == 1
    database.url = f"sqlite:///{tmp_path / 'b.db'}"
    assert database.sqlite_path == tmp_path / "b.db"
    assert dbmod.Database("sqlite://").sqlite_path is None
