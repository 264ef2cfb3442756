"""An evaluation's results in the shared SQL database, beside its files.

Whoever writes ``items.jsonl`` writes the rows: :meth:`Evaluation._keep` hands
each record it appends to the file to :meth:`EvalStore.put` as well, so the
in-process runner and the Ray driver (which runs the same ``Evaluation`` with a
remote executor) share one writer, and Ray workers write nothing. Rows go out
from a thread in batches (the event loop never waits on the database) and are
upserts keyed as a rerun resumes an item (:mod:`concilium.memory.evals`).

The evaluation's id lives in its output directory (the ``eval_id`` file), so
rerunning the same command is the same evaluation; each run first writes the
evaluation's row and every record the directory already holds, so rows a
killed driver never wrote (or written while the database was away) are filled
in by the next run. The files stay the source a run resumes from.

Example:
    >>> evaluation.store = EvalStore.open(evaluation.out_dir)
    >>> await evaluation.run()
    >>> evaluation.write_summary()       # also marks the evaluation's row finished
    >>> stored_summary(open_database(), evaluation.store.eval_id)
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concilium.eval.runner import Evaluation
    from concilium.memory.db import Database
    from concilium.memory.models import EvalRow

__all__ = ["ID_FILE", "EvalStore", "EvalStoreWarning", "read_eval_id", "stored_records",
           "stored_summary", "wanted"]

ID_FILE = "eval_id"
"""The file in an output directory holding its evaluation's id (no suffix: reports skip it)."""
HEAD_KEYS = ("complete", "dataset", "options", "started_at", "finished_at")
FLUSH_WAIT_S = 120.0


class EvalStoreWarning(UserWarning):
    """Results could not be written to SQL; the files have them, and a rerun writes them."""


def wanted(memory: str, sql: bool | None = None) -> bool:
    """Whether ``concilium eval`` writes its results to SQL.

    ``sql`` is the user's ``--sql/--no-sql``; by default yes when a database is
    configured (``CONCILIUM_DATABASE_URL``) or when the evaluation uses memory,
    whose ledger and lessons are in that database already.
    """
    if sql is not None:
        return sql
    from concilium.settings import get_settings

    return get_settings().database_url is not None or memory != "off"


def read_eval_id(out_dir: Path) -> str | None:
    """The id of the evaluation whose output directory is ``out_dir`` (``None``: none yet)."""
    try:
        text = (Path(out_dir) / ID_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def _json_safe(value: Any) -> Any:
    """``value`` exactly as ``items.jsonl`` has it (what JSON cannot say, as a string)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


class EvalStore:
    """Writes one evaluation's row and its results to a database; one per driver."""

    def __init__(self, db: Database, eval_id: str) -> None:
        self.db = db
        self.eval_id = eval_id
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._warned = False

    @classmethod
    def open(cls, out_dir: Path, url: str | None = None) -> EvalStore:
        """The store of the evaluation in ``out_dir`` (its id made on first use).

        ``url`` defaults to the ledger's database (``CONCILIUM_DATABASE_URL``, else
        SQLite under ``CONCILIUM_HOME``); it is opened (and migrated) here, so a
        database that cannot be reached stops the evaluation before any item runs.
        """
        from concilium.memory.db import open_database

        db = open_database(url)
        eval_id = read_eval_id(out_dir)
        if eval_id is None:
            eval_id = uuid.uuid4().hex[:16]
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            (Path(out_dir) / ID_FILE).write_text(eval_id + "\n", encoding="utf-8")
        return cls(db, eval_id)

    # ------------------------------------------------------------------ writing

    def begin(self, evaluation: Evaluation) -> None:
        """Write the evaluation's row (running) and every record it already holds."""
        from concilium.memory.evals import save_results

        self._save(evaluation, evaluation.head(False))
        records = [r for rows in evaluation.records().values() for r in rows]
        save_results(self.db, self.eval_id, (_json_safe(r) for r in records))

    def put(self, record: dict[str, Any]) -> None:
        """Queue one record (just appended to ``items.jsonl``) for the writer thread.

        The record is not copied: the runner never changes a record once it is kept.
        """
        self._queue.put(record)
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._write_loop, daemon=True,
                                                    name=f"eval-store-{self.eval_id}")
                    self._thread.start()

    def flush(self, timeout_s: float = FLUSH_WAIT_S) -> bool:
        """Wait until every record put so far is written (or given up on); ``False``: timed out."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def finish(self, evaluation: Evaluation, summary: dict[str, Any]) -> None:
        """After ``summary.json`` is written: the rows are complete, the row says how it ended."""
        self.flush()
        try:
            self._save(evaluation, {key: summary[key] for key in HEAD_KEYS})
        except Exception as error:
            self._warn(error)

    def _save(self, evaluation: Evaluation, head: dict[str, Any]) -> None:
        from concilium.eval.runner import _masked
        from concilium.memory.evals import save_eval

        save_eval(self.db, _json_safe(_masked({
            "id": self.eval_id,
            "out_dir": str(Path(evaluation.out_dir).resolve()),
            "teams": evaluation.team_descriptions(),
            "item_keys": [item.key for item in evaluation.dataset.items],
            "head": head,
        })))

    def _write_loop(self) -> None:
        from concilium.memory.evals import save_results

        while True:
            batch: list[dict[str, Any]] = []
            waiting: list[threading.Event] = []
            entry = self._queue.get()
            while True:
                (waiting if isinstance(entry, threading.Event) else batch).append(entry)
                if len(batch) >= 500:
                    break
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    save_results(self.db, self.eval_id, [_json_safe(r) for r in batch])
                except Exception as error:  # the files have it; the next run writes it
                    self._warn(error)
            for event in waiting:
                event.set()

    def _warn(self, error: BaseException) -> None:
        if self._warned:
            return
        self._warned = True
        from concilium.memory.db import one_line

        warnings.warn(EvalStoreWarning(
            f"could not write results of evaluation {self.eval_id} to the database "
            f"({one_line(error)}); items.jsonl and summary.json have them, and rerunning the "
            "same command writes them"), stacklevel=2)


# ---------------------------------------------------------------------- reading


def stored_records(db: Database, row: EvalRow) -> list[dict[str, Any]]:
    """The records the summary of evaluation ``row`` counts, in dataset then team order.

    Those of the teams as last run (their content hash, memory mode and whether they
    saw the reference) on the selected items, as ``items.jsonl`` has them.
    """
    from concilium.memory.evals import load_results

    order = {key: i for i, key in enumerate(row.item_keys)}
    teams = {(t["content_hash"], bool(t["saw_reference"])): i for i, t in enumerate(row.teams)}
    found = []
    for result in load_results(db, row.id):
        team = teams.get((result.team_hash, result.revealed))
        if team is not None and result.memory == row.memory and result.item in order:
            found.append((order[result.item], team, result.record))
    return [record for _, _, record in sorted(found, key=lambda f: (f[0], f[1]))]


def stored_summary(db: Database, ident: str) -> tuple[EvalRow, dict[str, Any]]:
    """The evaluation ``ident`` (id or unique prefix) and its summary, from SQL alone.

    The same summary as ``summary.json``, put together by the same function
    (:func:`concilium.eval.runner.summary_of`) from :func:`stored_records`.
    """
    from concilium.eval.runner import summary_of
    from concilium.memory.evals import find_eval

    row = find_eval(db, ident)
    records: dict[str, list[dict[str, Any]]] = {t["name"]: [] for t in row.teams}
    for record in stored_records(db, row):
        records[record["team"]].append(record)
    return row, summary_of(dict(row.head), row.teams, records)
