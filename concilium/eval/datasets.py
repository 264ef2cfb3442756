"""Evaluation datasets: questions with their accepted answers, from files or generated.

A dataset is named by a *spec*: a path to a JSONL file or a JSON list, or
``arith:N[:seed]`` for N generated multi-step arithmetic problems (so a
benchmark needs no files). GSM8K's ``... #### 18`` answers and CIAR's list of
accepted answers are understood as they come; other files name their fields.

Every item has a stable ``key`` (its id plus a digest of its question and
answers). Results are stored under that key, which is what lets a rerun skip
the items it already has, and never mistake an edited item for the old one.

Example:
    >>> data = load_dataset("arith:20:7", limit=5)
    >>> data.items[0].question, data.items[0].answers
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError
from concilium.tools.calculator import exact

__all__ = ["Dataset", "Item", "arithmetic_items", "load_dataset"]

_ARITH_RE = re.compile(r"^arith:(\d+)(?::(-?\d+))?$")
_GSM8K_MARK = "####"


@dataclass(frozen=True)
class Item:
    """One question and the answers a grader accepts (the first is the reference)."""

    id: str
    """The record's own id field, else its 0-based position in the source."""
    question: str
    answers: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Other fields of the record (e.g. a GSM8K solution), kept for reports."""

    @property
    def reference(self) -> str:
        """The primary answer: what a team is told to score itself (and count flips) against."""
        return self.answers[0]

    @property
    def tests(self) -> str | None:
        """The record's ``tests`` field: test code for a ``check: tests`` verifier only."""
        tests = self.meta.get("tests")
        return tests if isinstance(tests, str) and tests.strip() else None

    @property
    def key(self) -> str:
        """``id:digest`` — identifies this exact item across runs, even if the file changes."""
        blob = json.dumps([self.question, list(self.answers)], ensure_ascii=False).encode()
        return f"{self.id}:{hashlib.sha256(blob).hexdigest()[:10]}"


@dataclass(frozen=True)
class Dataset:
    """The selected items of one source, in evaluation order."""

    spec: str
    name: str
    items: tuple[Item, ...]
    total: int
    """How many items the source has before ``offset``/``limit``."""

    def __len__(self) -> int:
        return len(self.items)


def load_dataset(
    spec: str | Path,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    id_field: str = "id",
    limit: int | None = None,
    offset: int = 0,
    shuffle: bool = False,
    seed: int = 0,
) -> Dataset:
    """Read (or generate) a dataset and select the items to evaluate.

    Selection is shuffle (when asked, with ``seed``), then ``offset``, then ``limit``,
    so ``--offset 50 --limit 50`` is the second block of the same shuffled order.

    Args:
        spec: a ``.jsonl`` / ``.json`` path, or ``arith:N[:seed]``.
        question_field: record field holding the question.
        answer_field: record field holding the answer (a string, a number, or a list
            of accepted answers).
        id_field: record field holding a stable id, if the source has one.
        limit: at most this many items.
        offset: skip this many items first.
        shuffle: shuffle the items (deterministically, with ``seed``) before selecting.
        seed: the shuffle seed.

    Raises:
        ConfigError: the file is missing or malformed; the message names file, line and field.
    """
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more, not {limit}")
    if offset < 0:
        raise ConfigError(f"--offset must be 0 or more, not {offset}")
    text = str(spec)
    match = _ARITH_RE.match(text)
    if match:
        count, arith_seed = int(match.group(1)), int(match.group(2) or 0)
        items = arithmetic_items(count, arith_seed)
        name = f"arith-{count}-{arith_seed}"
    elif text.startswith("arith"):
        raise ConfigError(f"bad generated dataset {text!r}; write arith:N or arith:N:SEED")
    else:
        path = Path(spec)
        items = _read_file(path, question_field, answer_field, id_field)
        name = f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem
    total = len(items)
    order = list(items)
    if shuffle:
        random.Random(seed).shuffle(order)
    order = order[offset:]
    if limit is not None:
        order = order[:limit]
    return Dataset(spec=text, name=name, items=tuple(order), total=total)


# ---------------------------------------------------------------------------- files


def _read_file(path: Path, question_field: str, answer_field: str, id_field: str) -> list[Item]:
    if not path.exists():
        raise ConfigError(f"{path}: no such dataset file (or use arith:N[:seed] to generate one)")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a dataset file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    records = _records(path, text)
    if not records:
        raise ConfigError(f"{path}: the dataset is empty")
    items = []
    for index, (where, record) in enumerate(records):
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: a record must be an object, not {type(record).__name__}")
        for wanted, option in ((question_field, "--question-field"),
                               (answer_field, "--answer-field")):
            if wanted not in record:
                fields = ", ".join(record) or "none"
                raise ConfigError(
                    f"{where}: no field {wanted!r}; its fields: {fields} (choose with {option})"
                )
        question = record[question_field]
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"{where}: field {question_field!r} must be a non-empty string")
        answers = _answers(record[answer_field])
        if not answers:
            raise ConfigError(f"{where}: field {answer_field!r} holds no answer")
        raw_id = record.get(id_field)
        item_id = str(raw_id) if isinstance(raw_id, str | int) else str(index)
        meta = {k: v for k, v in record.items() if k not in (question_field, answer_field)}
        if isinstance(record[answer_field], str) and _GSM8K_MARK in record[answer_field]:
            meta["solution"] = record[answer_field]
        items.append(Item(id=item_id, question=question, answers=answers, meta=meta))
    return items


def _records(path: Path, text: str) -> list[tuple[str, Any]]:
    """``(where, record)`` pairs of a JSON list file or a JSONL file (where: for messages)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None
        if not isinstance(data, list):
            raise ConfigError(f"{path}: a JSON dataset must be a list of objects")
        return [(f"{path}: record {i}", record) for i, record in enumerate(data)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{path}:{number}: not valid JSON ({error.msg}); a dataset is JSONL "
                "(one object a line) or a JSON list of objects"
            ) from None
    return records


def _answers(value: Any) -> tuple[str, ...]:
    """Accepted answers from a field: GSM8K's ``#### x``, a CIAR list, a string or a number."""
    if isinstance(value, bool) or value is None:
        return ()
    if isinstance(value, int | float):
        return (repr(value) if isinstance(value, float) else str(value),)
    if isinstance(value, str):
        if _GSM8K_MARK in value:
            value = value.rsplit(_GSM8K_MARK, 1)[1]
        value = value.strip()
        return (value,) if value else ()
    if isinstance(value, Sequence):
        out: list[str] = []
        for entry in value:
            out.extend(_answers(entry))
        return tuple(out)
    return ()


# ---------------------------------------------------------------------------- generated


def arithmetic_items(count: int, seed: int = 0) -> list[Item]:
    """``count`` multi-step integer arithmetic problems with exact answers.

    Each has two to four operations over ``+ - *`` on numbers from 2 to 99, with
    one parenthesised sub-expression in about half of them. The expression
    appears literally in the question, so tool verifiers (the calculator) can check it.
    """
    rng = random.Random(seed)
    items = []
    for index in range(count):
        expression, value = _expression(rng)
        question = f"What is {expression}?"
        items.append(Item(id=str(index), question=question, answers=(str(value),)))
    return items


def _expression(rng: random.Random) -> tuple[str, int]:
    steps = rng.randint(2, 4)
    terms = [str(rng.randint(2, 99)) for _ in range(steps + 1)]
    ops = [rng.choice("+-*") for _ in range(steps)]
    # keep products small enough to read: multiply by one digit numbers
    for i, op in enumerate(ops):
        if op == "*":
            terms[i + 1] = str(rng.randint(2, 9))
    parts = [terms[0]]
    for op, term in zip(ops, terms[1:], strict=True):
        parts += [op, term]
    if rng.random() < 0.5:
        start = 2 * rng.randint(0, steps - 1)
        parts[start] = "(" + parts[start]
        parts[start + 2] = parts[start + 2] + ")"
    expression = " ".join(parts)
    value = exact(expression)  # the calculator: one evaluator, one set of bounds
    assert isinstance(value, int), expression
    return expression, value
