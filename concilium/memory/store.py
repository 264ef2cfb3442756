"""The reflection memory: remember lessons with provenance, recall the relevant ones.

:class:`Memory` is the one object the rest of concilium talks to: it owns the
SQL :class:`~concilium.memory.db.Database` (the source of truth), the optional
Redis layer (response cache, hot set, run events, locks) and the run
:class:`~concilium.memory.ledger.Ledger`.

Recall is full-text search (SQLite FTS5 / PostgreSQL ``tsvector``) over the
stored task and lesson, restricted to one namespace and, by default, to
lessons whose outcome was *checked* (ground truth or a tool, see
:data:`~concilium.memory.models.CHECKED_BY`), then re-ranked by who checked
the outcome and how often recalling the lesson was followed by a right answer.

Example:
    >>> memory = Memory.open()
    >>> memory.remember("Multiply before adding.", task="What is 2 + 3 * 4?",
    ...                 namespace="math", outcome="failure", verified_by="ground_truth")
    >>> [l.lesson for l in memory.recall("What is 5 + 6 * 7?", namespace="math")]
    ['Multiply before adding.']
"""

from __future__ import annotations

import json
import math
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, func, select

from concilium.errors import ConfigError
from concilium.memory.db import Database, open_database
from concilium.memory.models import CHECKED_BY, Behavior, Reflection, utcnow

if TYPE_CHECKING:
    from concilium.memory.hot import HotMemory
    from concilium.memory.ledger import Ledger
    from concilium.memory.redis_layer import RedisCache, RedisLayer

__all__ = ["OUTCOMES", "VERIFIERS", "Lesson", "Memory", "coverage", "index_terms", "query_terms",
           "stem"]

Outcome = Literal["success", "failure"]
OUTCOMES: tuple[str, ...] = ("success", "failure")
VERIFIERS: tuple[str, ...] = ("ground_truth", "tool", "llm")
"""Who can vouch for an outcome; ``None`` means nobody checked it."""

TRUST: dict[str | None, float] = {"ground_truth": 1.0, "tool": 0.9, "llm": 0.6, None: 0.5}
"""How much a lesson's rank counts on who checked the outcome that produced it."""
MIN_RELATIVE_RELEVANCE = 0.25
"""Candidates scoring under this share of the best text match are noise, not lessons."""
MAX_TERMS = 24
MAX_QUERY_TERMS = 8
"""Recall searches the full-text index by at most this many of a task's rarest terms..."""
POSTINGS_BUDGET = 1000
"""... and reads about this many postings in all (see ``_search_terms``)."""
MAX_LESSON_CHARS = 4000
ALL = ""
"""The ``term_stats`` row that counts every lesson (no term is empty)."""

_WORD = re.compile(r"[^\W_]+")
_STOP = frozenset(
    """a about above after again all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further get gets got had has have having he her here hers him his how i if in into
    is it its itself just let lets many me more most much must my no nor not now of off on
    once only or other our ours out over own per same she should so some such than that the
    their theirs them then there these they this those through to too under until up upon us
    very was we were what when where which while who whom why will with would you your yours
    answer answers question find give given total number numbers value many much""".split()  # noqa: SIM905
)


def stem(word: str) -> str:
    """A crude stem, enough to match plurals and tenses when re-ranking a few candidates."""
    for suffix, repl, shortest in (("ies", "y", 5), ("es", "", 5), ("s", "", 4),
                                   ("ing", "", 6), ("ed", "", 5)):
        if word.endswith(suffix) and len(word) >= shortest and not word.endswith("ss"):
            return word[: -len(suffix)] + repl
    return word


def coverage(terms: Sequence[str], text_: str) -> float:
    """The share of ``terms`` that occur in ``text_`` (up to a crude stem)."""
    if not terms:
        return 0.0
    found = {stem(w) for w in _WORD.findall(text_.lower())}
    return sum(1 for t in terms if stem(t) in found) / len(terms)


def query_terms(text_: str, limit: int = MAX_TERMS) -> list[str]:
    """The distinctive words of a text, in order: lowercased, no stop words, no repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text_.lower()):
        if word in _STOP or len(word) < 2 or len(word) > 64:
            continue
        seen.setdefault(word, None)
        if len(seen) >= limit:
            break
    return list(seen)


@dataclass(frozen=True)
class Lesson:
    """A stored reflection as recall and the CLI see it."""

    id: int
    namespace: str
    task: str
    lesson: str
    outcome: str
    verified_by: str | None
    checked: bool
    run_id: str | None
    team: str | None
    model: str | None
    created_at: datetime
    use_count: int = 0
    success_count: int = 0
    failure_count: int = 0
    score: float = 0.0
    """Recall's ranking score (0 outside recall and search)."""
    quarantined: bool = False
    """Kept but never recalled (issue 13, ``memory/usefulness.py``)."""
    quarantine_reason: str | None = None

    @property
    def usefulness(self) -> float:
        """Laplace-smoothed share of recalls followed by a right answer (0.5 when unknown)."""
        return (self.success_count + 1) / (self.success_count + self.failure_count + 2)

    @classmethod
    def of(cls, row: Reflection | Any, score: float = 0.0) -> Lesson:
        """From an ORM object or a plain row with the same column names."""
        return cls(
            id=row.id, namespace=row.namespace, task=row.task, lesson=row.lesson,
            outcome=row.outcome, verified_by=row.verified_by, checked=bool(row.checked),
            run_id=row.run_id, team=row.team, model=row.model, created_at=row.created_at,
            use_count=row.use_count, success_count=row.success_count,
            failure_count=row.failure_count, score=score,
            quarantined=bool(getattr(row, "quarantined", False)),
            quarantine_reason=getattr(row, "quarantine_reason", None),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lesson:
        """Back from :meth:`to_json` (the hot layer's cached recall answers)."""
        created = data.get("created_at")
        return cls(**{**data, "created_at": datetime.fromisoformat(created) if created else None})


class Memory:
    """Reflections, behaviors and the run ledger over one database (and optionally Redis)."""

    def __init__(self, db: Database, redis: RedisLayer | None = None, *,
                 cache_ttl_s: float | None = 7 * 24 * 3600.0,
                 cache_any_temperature: bool = False) -> None:
        self.db = db
        self.redis = redis
        self._cache_ttl_s = cache_ttl_s
        self._cache_any_temperature = cache_any_temperature
        self._ledger: Ledger | None = None
        self._hot: HotMemory | None = None

    def __repr__(self) -> str:
        return f"Memory({self.db!r}, redis={self.redis!r})"

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        redis_url: str | Literal[False] | None = None,
        redis_prefix: str | None = None,
        cached_only: bool = False,
    ) -> Memory:
        """The process's memory for a database URL (default: settings), migrated on first use.

        Args:
            url: SQLAlchemy URL; default ``CONCILIUM_DATABASE_URL`` or SQLite under home.
            redis_url: Redis URL; default ``CONCILIUM_REDIS_URL``; ``False`` for none.
            redis_prefix: key prefix; default ``CONCILIUM_REDIS_PREFIX``.
            cached_only: return ``None`` instead of opening a memory this process has
                not opened yet (opening may migrate: not on an event loop).
        """
        from concilium.settings import get_settings

        settings = get_settings()
        url = url or settings.sqlalchemy_url()
        if redis_url is None and settings.redis_url is not None:
            redis_url = settings.redis_url.get_secret_value()
        prefix = redis_prefix if redis_prefix is not None else settings.redis_prefix
        key = (url, redis_url or None, prefix, settings.cache_ttl_s,
               settings.cache_any_temperature)
        with _open_lock:
            memory = _memories.get(key)
            if memory is None and cached_only:
                return None  # type: ignore[return-value]
            if memory is None:
                layer = None
                if redis_url:
                    from concilium.memory.redis_layer import redis_layer

                    layer = redis_layer(redis_url, prefix)
                memory = cls(open_database(url), layer, cache_ttl_s=settings.cache_ttl_s,
                             cache_any_temperature=settings.cache_any_temperature)
                _memories[key] = memory
                while len(_memories) > MAX_OPEN:
                    _memories.popitem(last=False)
            _memories.move_to_end(key)
            return memory

    def close(self) -> None:
        """Write what is queued, then dispose of the database engine (tests, shutdown)."""
        from concilium.memory.db import close_database
        from concilium.memory.ledger import flush

        flush()
        with _open_lock:
            for key in [k for k, m in _memories.items() if m is self]:
                del _memories[key]
        close_database(self.db.url)

    @property
    def ledger(self) -> Ledger:
        """The run ledger writing to this memory's database (and Redis streams)."""
        if self._ledger is None:
            from concilium.memory.ledger import Ledger

            self._ledger = Ledger(self.db, self.redis)
        return self._ledger

    @property
    def hot(self) -> HotMemory | None:
        """The namespace hot sets in Redis (recall answers, behaviors), when Redis is set."""
        if self.redis is None:
            return None
        if self._hot is None:
            from concilium.memory.hot import HotMemory

            self._hot = HotMemory(self.redis)
        return self._hot

    @property
    def cache(self) -> RedisCache | None:
        """The model-response cache, when Redis is configured (it degrades on its own)."""
        if self.redis is None:
            return None
        from concilium.memory.redis_layer import RedisCache

        return RedisCache(self.redis, ttl_s=self._cache_ttl_s,
                          any_temperature=self._cache_any_temperature)

    # ---------------------------------------------------------------- remember

    def remember(
        self,
        lesson: str,
        *,
        task: str,
        namespace: str,
        outcome: Outcome,
        verified_by: str | None = None,
        run_id: str | None = None,
        team: str | None = None,
        model: str | None = None,
        uid: str | None = None,
    ) -> int:
        """Store a lesson with its provenance; returns its id.

        Args:
            lesson: the lesson text, short and general ("check units before adding").
            task: the task the lesson was learned on (what recall matches against).
            namespace: the team's (or a shared) namespace.
            outcome: ``success`` or ``failure`` of the run or trial that taught it.
            verified_by: who checked that outcome: ``ground_truth``, ``tool``, ``llm``
                or ``None``; only the first two make it recallable by default.
            run_id: the run that produced it (kept as provenance).
            team: the team's name.
            model: the model that wrote the lesson.
            uid: an idempotency key: storing the same ``uid`` twice stores it once.
        """
        return self.remember_many([{
            "lesson": lesson, "task": task, "namespace": namespace, "outcome": outcome,
            "verified_by": verified_by, "run_id": run_id, "team": team, "model": model,
            "uid": uid,
        }])[0]

    def remember_many(self, items: Iterable[dict[str, Any]]) -> list[int]:
        """Store many lessons in one transaction (imports, benchmarks); returns their ids.

        Each item has :meth:`remember`'s arguments as keys. Items whose ``uid`` is
        already stored are not stored again (their existing id is returned).
        """
        from concilium.secrets import secret_values

        secrets = secret_values()
        rows = [_prepare(item, secrets) for item in items]
        if not rows:
            return []
        uids = [row["uid"] for row in rows]
        with self.db.write() as session:
            existing = set(_by_uid(session, uids))
            fresh = [row for row in rows if row["uid"] not in existing]
            if fresh:
                session.execute(_insert_ignore(self.db, Reflection), fresh)
                _count_terms(session, self.db.dialect, [r["terms"] for r in fresh], +1)
            ids = _by_uid(session, uids)
        if self.redis is not None:
            for row in fresh:
                self.redis.hot_add(row["namespace"], {
                    "id": ids[row["uid"]], **{k: row[k] for k in _HOT_KEYS},
                    "created_at": row["created_at"].isoformat(),
                })
        if self.hot is not None and fresh:  # every process's cached recall is now stale
            self.hot.bump(*{row["namespace"] for row in fresh})
        return [ids[uid] for uid in uids]

    def record_use(self, ids: Sequence[int], correct: bool | None, *,
                   behaviors: Sequence[int] = (), run_id: str | None = None,
                   team: str | None = None, namespace: str | None = None,
                   review: bool = False) -> list[tuple[str, int]]:
        """Count a use of lessons ``ids`` (and ``behaviors``) and whether the run ended right.

        With a ``run_id`` each use is also a ``memory_uses`` row, what usefulness reads;
        ``review`` then quarantines what has become reliably harmful (returned as
        ``(kind, id)``; see :mod:`concilium.memory.usefulness`).
        """
        from concilium.memory import usefulness

        if not ids and not behaviors:
            return []
        with self.db.write_engine.begin() as conn:
            usefulness.record_uses(conn, ids, correct, behaviors=behaviors, run_id=run_id,
                                   team=team, namespace=namespace)
        if not review:
            return []
        return usefulness.review(self, [("lesson", i) for i in ids]
                                 + [("behavior", i) for i in behaviors])

    # ---------------------------------------------------------------- recall

    def surely_empty(self, namespace: str) -> bool:
        """Whether ``namespace`` has no lessons, if that can be told at once (SQLite, one
        indexed lookup on the event loop); ``False`` when it cannot: recall to know.

        A run of a team with nothing to recall then skips a trip off the event loop.
        """
        import sqlite3

        with self.db.quick_write() as conn:
            if conn is None:
                return False
            try:
                row = conn.execute("SELECT 1 FROM reflections WHERE namespace = ? LIMIT 1",
                                   (namespace,)).fetchone()
            except sqlite3.Error:
                return False
        return row is None

    def recall(
        self, task: str, *, namespace: str, k: int = 3, verified_only: bool = True
    ) -> list[Lesson]:
        """The ``k`` lessons most relevant to ``task`` in ``namespace``, best first.

        Args:
            task: the new task.
            namespace: only lessons of this namespace are candidates.
            k: how many to return at most.
            verified_only: only lessons whose outcome was checked by ground truth or a tool.
        """
        if k <= 0:
            return []
        _check_namespace(namespace)
        hot, version = self.hot, None
        if hot is not None:  # the namespace's hot set first (memory/hot.py), then SQL
            from concilium.memory.hot import recall_key

            key = recall_key(task, k, verified_only)
            version, cached = hot.get(namespace, key)
            if cached is not None:
                return [Lesson.from_json(item) for item in cached]
        found = self._ranked(task, namespace=namespace, k=k, verified_only=verified_only)
        if hot is not None and version is not None:
            hot.put(namespace, version, key, [lesson.to_json() for lesson in found])
        return found

    def search(
        self, query: str, *, namespace: str | None = None, limit: int = 20,
        verified_only: bool = False,
    ) -> list[Lesson]:
        """Full-text search of lessons (and the tasks they came from), in any namespace."""
        return self._ranked(query, namespace=namespace, k=limit, verified_only=verified_only)

    def _ranked(
        self, query: str, *, namespace: str | None, k: int, verified_only: bool
    ) -> list[Lesson]:
        terms = list(dict.fromkeys(stem(t) for t in query_terms(query)))
        if not terms:
            return []
        pool = max(4 * k, 24)
        with self.db.session() as session:
            from concilium.memory.db import driver_sql

            names = {f"t{i}": term for i, term in enumerate([*terms, ALL])}
            docs: dict[str, int] = dict(session.connection().exec_driver_sql(driver_sql(
                f"SELECT term, docs FROM term_stats WHERE term IN "
                f"({', '.join(':' + n for n in names)})", self.db.dialect), names).all())
            total = max(1, docs.pop(ALL, 1))
            weight = {t: math.log(1.0 + total / (docs.get(t, 0) + 1.0)) for t in terms}
            search = _search_terms(terms, docs)
            if not search:
                return []
            if self.db.dialect not in ("sqlite", "postgresql"):  # pragma: no cover
                raise ConfigError(f"recall needs SQLite or PostgreSQL, not {self.db.dialect}")
            hits = _candidates(session, self.db.dialect, {t: weight[t] for t in search},
                               namespace, verified_only, pool)
            if not hits:
                return []
            table = Reflection.__table__
            rows = session.execute(  # plain rows, not ORM objects: recall is on the hot path
                select(*table.c).where(table.c.id.in_(list(hits)))
                .where(table.c.quarantined.is_(False))  # kept, never recalled (issue 13)
            ).all()
        # Text relevance: the idf-weighted share of *all* the task's terms a lesson covers
        # (not only the few searched by).
        whole = sum(weight.values())
        relevance = {}
        for row in rows:
            words = set(row.terms.split())
            relevance[row.id] = sum(w for t, w in weight.items() if t in words) / whole
        best = max(relevance.values(), default=0.0)
        scored = []
        for row in rows:
            if best <= 0 or relevance[row.id] < MIN_RELATIVE_RELEVANCE * best:
                continue
            trust = TRUST.get(row.verified_by, TRUST[None])
            usefulness = (row.success_count + 1) / (row.success_count + row.failure_count + 2)
            score = relevance[row.id] * trust * (0.5 + usefulness)
            scored.append(Lesson.of(row, score=score))
        scored.sort(key=lambda lesson: (-lesson.score, -lesson.id))
        unique: dict[str, Lesson] = {}  # the same lesson learned twice is said once
        for lesson in scored:
            unique.setdefault(" ".join(lesson.lesson.lower().split()), lesson)
        return list(unique.values())[:k]

    # ---------------------------------------------------------------- browse

    def get(self, reflection_id: int) -> Lesson | None:
        with self.db.session() as session:
            row = session.get(Reflection, reflection_id)
            return None if row is None else Lesson.of(row)

    def lessons(
        self, *, namespace: str | None = None, limit: int = 50, offset: int = 0,
        verified_only: bool = False,
    ) -> list[Lesson]:
        """Stored lessons, newest first."""
        query = select(Reflection).order_by(Reflection.created_at.desc(), Reflection.id.desc())
        if namespace is not None:
            query = query.where(Reflection.namespace == namespace)
        if verified_only:
            query = query.where(Reflection.checked.is_(True))
        with self.db.session() as session:
            rows = session.execute(query.limit(limit).offset(offset)).scalars().all()
            return [Lesson.of(row) for row in rows]

    def recent(self, namespace: str, n: int = 20) -> list[dict[str, Any]]:
        """The newest lessons of a namespace: from Redis's hot set when it has them, else SQL."""
        if self.redis is not None:
            hot = self.redis.hot_recent(namespace, n)
            if hot:
                return hot
        return [lesson.to_json() for lesson in self.lessons(namespace=namespace, limit=n)]

    def namespaces(self) -> list[tuple[str, int]]:
        """Every namespace with its number of lessons."""
        query = (select(Reflection.namespace, func.count()).group_by(Reflection.namespace)
                 .order_by(Reflection.namespace))
        with self.db.session() as session:
            return [(ns, int(n)) for ns, n in session.execute(query).all()]

    def count(self, namespace: str | None = None) -> int:
        query = select(func.count()).select_from(Reflection)
        if namespace is not None:
            query = query.where(Reflection.namespace == namespace)
        with self.db.session() as session:
            return int(session.execute(query).scalar_one())

    def behaviors(self, namespace: str | None = None) -> list[Behavior]:
        """Distilled behaviors (with their source reflections loaded)."""
        from sqlalchemy.orm import selectinload

        query = select(Behavior).options(selectinload(Behavior.sources)).order_by(Behavior.id)
        if namespace is not None:
            query = query.where(Behavior.namespace == namespace)
        with self.db.session() as session:
            return list(session.execute(query).scalars().all())

    # ---------------------------------------------------------------- forget / export

    def forget(
        self, ids: Iterable[int] = (), *, namespace: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Delete lessons by id, or every lesson of a namespace or run; returns how many."""
        ids = list(ids)
        if not ids and namespace is None and run_id is None:
            raise ValueError("say what to forget: ids, a namespace or a run id")
        query = delete(Reflection)
        if ids:
            query = query.where(Reflection.id.in_(ids))
        if namespace is not None:
            query = query.where(Reflection.namespace == namespace)
        if run_id is not None:
            query = query.where(Reflection.run_id == run_id)
        with self.db.write() as session:
            gone = session.execute(
                query.returning(Reflection.id, Reflection.namespace, Reflection.terms)
            ).all()
            _count_terms(session, self.db.dialect, [terms for _i, _ns, terms in gone], -1)
        if self.redis is not None:
            by_namespace: dict[str, list[int]] = {}
            for rid, ns, _terms in gone:
                by_namespace.setdefault(ns, []).append(rid)
            for ns, rids in by_namespace.items():
                self.redis.hot_forget(ns, None if namespace == ns and not ids else rids)
            if self.hot is not None and by_namespace:
                self.hot.bump(*by_namespace)
        return len(gone)

    def iter_export(self, *, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Every lesson (oldest first) with its provenance, as JSON-able dicts."""
        query = select(Reflection).order_by(Reflection.id)
        if namespace is not None:
            query = query.where(Reflection.namespace == namespace)
        with self.db.session() as session:
            for row in session.execute(query.execution_options(yield_per=500)).scalars():
                yield Lesson.of(row).to_json()

    def export(self, out: IO[str], *, namespace: str | None = None) -> int:
        """Write lessons as JSON Lines to ``out``; returns how many."""
        count = 0
        for item in self.iter_export(namespace=namespace):
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
            count += 1
        return count


_memories: OrderedDict[tuple[Any, ...], Memory] = OrderedDict()
MAX_OPEN = 16
_open_lock = threading.Lock()


def _check_namespace(namespace: str) -> None:
    if not namespace or len(namespace) > 128:
        raise ValueError(f"a namespace is 1 to 128 characters, not {namespace!r}")


_HOT_KEYS = ("namespace", "task", "lesson", "outcome", "verified_by", "checked", "run_id",
             "team", "model")


def index_terms(task: str, lesson: str) -> str:
    """What recall searches a lesson by: the stems of its task's and its own distinctive words.

    Stored with each lesson; changing :func:`stem` or :func:`query_terms` needs a
    migration that recomputes ``reflections.terms`` and ``term_stats``.
    """
    return " ".join(dict.fromkeys(stem(t) for t in query_terms(f"{task} {lesson}", limit=256)))


def _prepare(item: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """A validated, redacted reflection row from :meth:`Memory.remember`'s arguments."""
    from concilium.secrets import redact

    lesson = redact(" ".join(str(item.get("lesson", "")).split())[:MAX_LESSON_CHARS], secrets)
    task = redact(str(item.get("task", "")), secrets)
    outcome, verified_by = item.get("outcome"), item.get("verified_by")
    if not lesson:
        raise ValueError("an empty lesson cannot be remembered")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if verified_by is not None and verified_by not in VERIFIERS:
        raise ValueError(
            f"verified_by must be one of {', '.join(VERIFIERS)} or None, not {verified_by!r}"
        )
    namespace = str(item.get("namespace", ""))
    _check_namespace(namespace)
    return {
        "uid": item.get("uid") or uuid.uuid4().hex, "namespace": namespace, "task": task,
        "lesson": lesson, "terms": index_terms(task, lesson), "outcome": outcome,
        "verified_by": verified_by, "checked": verified_by in CHECKED_BY,
        "run_id": item.get("run_id"), "team": item.get("team"), "model": item.get("model"),
        "created_at": utcnow(),
    }


def _by_uid(session: Any, uids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i in range(0, len(uids), 500):
        chunk = uids[i:i + 500]
        found.update((uid, rid) for rid, uid in session.execute(
            select(Reflection.id, Reflection.uid).where(Reflection.uid.in_(chunk))).all())
    return found


def _count_terms(session: Any, dialect: str, term_lists: list[str], sign: int) -> None:
    """Add (or take) each lesson's terms to the document counts, ``ALL`` counting lessons."""
    from collections import Counter

    from concilium.memory.db import driver_sql

    counts: Counter[str] = Counter()
    for terms in term_lists:
        counts.update(terms.split())
    counts[ALL] = len(term_lists)
    # Sorted, so concurrent writers lock the same rows in the same order (no deadlock).
    params = [{"term": t, "docs": sign * n} for t, n in sorted(counts.items())]
    session.connection().exec_driver_sql(driver_sql(
        "INSERT INTO term_stats (term, docs) VALUES (:term, :docs) "
        "ON CONFLICT (term) DO UPDATE SET docs = term_stats.docs + excluded.docs", dialect,
    ), params)


def _search_terms(terms: list[str], docs: dict[str, int]) -> list[str]:
    """The rarest few of a task's terms: what recall reads posting lists for.

    Rare terms say most about a task and have the shortest posting lists, so recall
    reads at most ``MAX_QUERY_TERMS`` of them and about ``POSTINGS_BUDGET`` postings
    in all, however large the store. Numbers match by accident: words go first.
    """
    present = [t for t in terms if docs.get(t, 0) > 0]
    words = [t for t in present if not t.isdigit()] or present
    chosen: list[str] = []
    read = 0
    for term in sorted(words, key=lambda t: (docs[t], t)):
        if chosen and (len(chosen) >= MAX_QUERY_TERMS or read + docs[term] > POSTINGS_BUDGET):
            break
        chosen.append(term)
        read += docs[term]
    return chosen


def _insert_ignore(db: Database, table: Any) -> Any:
    """INSERT that skips rows whose unique key exists (so retried writes never duplicate)."""
    if db.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _namespace_token(namespace: str) -> str:
    """The FTS ``meta`` token of a namespace (see the migration: 'n' + hex + '0')."""
    return "n" + namespace.encode("utf-8").hex() + "0"


def _candidates(
    session: Any, dialect: str, weights: dict[str, float], namespace: str | None,
    verified_only: bool, pool: int,
) -> dict[int, float]:
    """Lessons matching any searched term, scored by the summed weights of the terms they hold.

    One subquery per term (its posting list), added up in SQL: no ranking function
    over every match, so the cost is the few short posting lists recall chose to read.
    Each posting list is filtered by namespace and checked outcome *inside* its
    subquery, before ``LIMIT``: filtering the best few afterwards let a big namespace's
    lessons push a small one's out of the shortlist. SQLite filters inside the FTS
    index (the ``meta`` tokens, see migration 0001), PostgreSQL on the matching rows.
    """
    params: dict[str, Any] = {"n": pool}
    meta = []
    if namespace is not None:
        meta.append(f'meta : "{_namespace_token(namespace)}"')
    if verified_only:
        meta.append('meta : "ck1"')
    filters = ""
    if namespace is not None:
        filters += " AND namespace = :ns"
        params["ns"] = namespace
    if verified_only:
        filters += " AND checked"
    parts = []
    for i, (term, weight) in enumerate(weights.items()):
        params[f"w{i}"] = weight
        if dialect == "sqlite":
            params[f"q{i}"] = " AND ".join([f'terms : "{term}"', *meta])
            parts.append(f"SELECT rowid AS id, :w{i} AS w FROM reflections_fts "
                         f"WHERE reflections_fts MATCH :q{i}")
        else:
            params[f"q{i}"] = term
            parts.append(f"SELECT id, CAST(:w{i} AS float) AS w FROM reflections "
                         f"WHERE tsv @@ to_tsquery('simple'::regconfig, :q{i}){filters}")
    sql = (f"SELECT id, SUM(w) AS s FROM ({' UNION ALL '.join(parts)}) AS hits "
           "GROUP BY id ORDER BY s DESC, id DESC LIMIT :n")
    from concilium.memory.db import driver_sql

    rows = session.connection().exec_driver_sql(driver_sql(sql, dialect), params).all()
    return {int(rid): float(score) for rid, score in rows}
