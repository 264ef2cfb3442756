"""Datasets: the real GSM8K and CIAR files as they come, others by field name, generated ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from concilium.errors import ConfigError
from concilium.eval.datasets import arithmetic_items, load_dataset
from concilium.tools.calculator import evaluate, find_expression

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
GSM8K = SHARED / "gsm8k" / "test.jsonl"
CIAR = SHARED / "ciar" / "CIAR.json"


@pytest.mark.skipif(not GSM8K.exists(), reason=f"{GSM8K} is not on this machine")
def test_gsm8k_answers_come_from_the_hash_line() -> None:
    data = load_dataset(GSM8K, limit=3)
    assert data.total == 1319 and data.name == "gsm8k-test"
    assert [item.answers for item in data.items] == [("18",), ("3",), ("70000",)]
    assert data.items[0].question.startswith("Janet")
    assert "<<16-3-4=9>>" in data.items[0].meta["solution"]


@pytest.mark.skipif(not CIAR.exists(), reason=f"{CIAR} is not on this machine")
def test_ciar_keeps_every_accepted_answer() -> None:
    data = load_dataset(CIAR, limit=2)
    assert data.total == 50
    assert data.items[0].answers == ("1.5", "3/2")
    assert data.items[1].answers == ("0.75", "75%", "3/4")
    assert data.items[1].reference == "0.75"
    assert data.items[1].meta["incorrect answer"] == ["0.9", "90%", "9/10"]


def test_field_names_ids_and_blank_lines() -> None:
    data = load_dataset(DATA / "eval_fields.jsonl", question_field="prompt",
                        answer_field="target", id_field="uid")
    assert [i.id for i in data.items] == ["a1", "a2", "3"]
    assert data.items[1].answers == ("Jupiter", "planet Jupiter")
    assert data.items[0].meta == {"uid": "a1", "source": "geo"}


def test_json_list_with_numbers_and_lists() -> None:
    data = load_dataset(DATA / "eval_list.json")
    assert [i.answers for i in data.items] == [("1.5", "3/2"), ("0.75", "75%", "3/4"), ("15",)]
    assert [i.id for i in data.items] == ["0", "1", "2"]


def test_limit_offset_shuffle_seed() -> None:
    every = [i.id for i in load_dataset(DATA / "eval_known.jsonl").items]
    assert every == [str(n) for n in range(10)]
    assert [i.id for i in load_dataset(DATA / "eval_known.jsonl", offset=2, limit=3).items] == [
        "2", "3", "4"]
    shuffled = [i.id for i in load_dataset(DATA / "eval_known.jsonl", shuffle=True, seed=1).items]
    again = [i.id for i in load_dataset(DATA / "eval_known.jsonl", shuffle=True, seed=1).items]
    other = [i.id for i in load_dataset(DATA / "eval_known.jsonl", shuffle=True, seed=2).items]
    assert shuffled == again and sorted(shuffled) == every and shuffled != every
    assert other != shuffled
    window = load_dataset(DATA / "eval_known.jsonl", shuffle=True, seed=1, offset=4, limit=2)
    assert [i.id for i in window.items] == shuffled[4:6]


def test_item_keys_are_stable_and_change_with_the_item() -> None:
    first = load_dataset(DATA / "eval_known.jsonl").items
    second = load_dataset(DATA / "eval_known.jsonl").items
    assert [i.key for i in first] == [i.key for i in second]
    assert len({i.key for i in first}) == len(first)
    edited = type(first[0])(id=first[0].id, question=first[0].question, answers=("8",))
    assert edited.key != first[0].key and edited.key.startswith("0:")


def test_generated_arithmetic_is_right_and_reproducible() -> None:
    items = arithmetic_items(40, seed=3)
    assert [i.question for i in items] == [i.question for i in arithmetic_items(40, seed=3)]
    assert [i.question for i in items] != [i.question for i in arithmetic_items(40, seed=4)]
    for item in items:
        expression = find_expression(item.question)
        assert expression is not None
        assert evaluate(expression) == int(item.reference), item.question
        assert sum(expression.count(op) for op in "+-*") >= 2  # multi-step
    spec = load_dataset("arith:40:3", limit=5)
    assert spec.total == 40 and len(spec) == 5 and spec.name == "arith-40-3"
    assert load_dataset("arith:7").items == tuple(arithmetic_items(7, 0))


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("missing.jsonl", {}, "no such dataset file"),
        (str(DATA), {}, "is a directory"),
        (str(DATA / "eval_bad_json.jsonl"), {}, r"eval_bad_json.jsonl:2: not valid JSON"),
        (str(DATA / "eval_missing_field.jsonl"), {},
         r"eval_missing_field.jsonl:2: no field 'question'; its fields: prompt, answer "
         r"\(choose with --question-field\)"),
        (str(DATA / "eval_known.jsonl"), {"answer_field": "solution"}, "--answer-field"),
        ("arith:ten", {}, "arith:N or arith:N:SEED"),
        ("arith:5", {"limit": -1}, "--limit"),
        ("arith:5", {"offset": -2}, "--offset"),
    ],
)
def test_bad_datasets_say_what_and_where(spec: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_dataset(spec, **kwargs)


def test_json_records_must_be_objects_with_an_answer(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"question": "q", "answer": null}]')
    with pytest.raises(ConfigError, match="holds no answer"):
        load_dataset(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="record 0: a record must be an object, not int"):
        load_dataset(path)
