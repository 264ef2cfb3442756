"""Recall's full-text engine in SQL: term counts, and the lessons a task's rarest terms find.

SQLite searches its FTS5 table (``reflections_fts``), PostgreSQL a ``tsvector``
column; both read only the posting lists of a few rare terms, so recall costs
about the same however large the store grows.
:class:`~concilium.memory.store.Memory` ranks what :func:`candidates` returns.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from concilium.memory.db import driver_sql

__all__ = [
    "ALL",
    "MAX_QUERY_TERMS",
    "POSTINGS_BUDGET",
    "candidates",
    "count_terms",
    "namespace_token",
    "search_terms",
]

MAX_QUERY_TERMS = 8
"""Recall searches the full-text index by at most this many of a task's rarest terms..."""
POSTINGS_BUDGET = 1000
"""... and reads about this many postings in all (see :func:`search_terms`)."""
ALL = ""
"""The ``term_stats`` row that counts every lesson (no term is empty)."""


def count_terms(session: Any, dialect: str, term_lists: list[str], sign: int) -> None:
    """Add (or take) each lesson's terms to the document counts, ``ALL`` counting lessons."""
    counts: Counter[str] = Counter()
    for terms in term_lists:
        counts.update(terms.split())
    counts[ALL] = len(term_lists)
    # Sorted, so concurrent writers lock the same rows in the same order (no deadlock).
    params = [{"term": t, "docs": sign * n} for t, n in sorted(counts.items())]
    session.connection().exec_driver_sql(
        driver_sql(
            "INSERT INTO term_stats (term, docs) VALUES (:term, :docs) "
            "ON CONFLICT (term) DO UPDATE SET docs = term_stats.docs + excluded.docs",
            dialect,
        ),
        params,
    )


def search_terms(terms: list[str], docs: dict[str, int]) -> list[str]:
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


def namespace_token(namespace: str) -> str:
    """The FTS ``meta`` token of a namespace (see the migration: 'n' + hex + '0')."""
    return "n" + namespace.encode("utf-8").hex() + "0"


def candidates(
    session: Any,
    dialect: str,
    weights: dict[str, float],
    namespace: str | None,
    verified_only: bool,
    pool: int,
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
        meta.append(f'meta : "{namespace_token(namespace)}"')
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
            parts.append(
                f"SELECT rowid AS id, :w{i} AS w FROM reflections_fts "
                f"WHERE reflections_fts MATCH :q{i}"
            )
        else:
            params[f"q{i}"] = term
            parts.append(
                f"SELECT id, CAST(:w{i} AS float) AS w FROM reflections "
                f"WHERE tsv @@ to_tsquery('simple'::regconfig, :q{i}){filters}"
            )
    sql = (
        f"SELECT id, SUM(w) AS s FROM ({' UNION ALL '.join(parts)}) AS hits "
        "GROUP BY id ORDER BY s DESC, id DESC LIMIT :n"
    )
    rows = session.connection().exec_driver_sql(driver_sql(sql, dialect), params).all()
    return {int(rid): float(score) for rid, score in rows}
