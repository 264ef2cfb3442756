"""The README's first command, on the real default model, ends at the right answer.

It is the first thing a new user runs, so it must show what concilium is for: the
model's prose answer is rejected by the calculator and a program-aided refiner
corrects it. The test reads the command out of the README, so the two cannot drift.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from patience import patient

from concilium import load_team

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed: pip install -e '.[local]'",
    ),
]

ROOT = Path(__file__).resolve().parents[2]


def first_command() -> tuple[Path, str]:
    """The team file and task of the README's first ``concilium run``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"concilium run [^\n]+", readme)
    assert line is not None, "the README has no `concilium run` command"
    words = shlex.split(line.group(0))
    return ROOT / words[2], words[3]


async def test_first_command_ends_at_411_on_the_default_model() -> None:
    team_file, task = first_command()
    assert (team_file.name, task) == ("gvr_pal.yaml", "What is 17 * 24 + 3?")
    result = await load_team(patient(team_file)).arun(task, reference="411")
    steps = [(s["role"], s["model"]) for s in result.steps]
    assert steps[:2] == [("generator", "local/smollm2"), ("verifier", "calculator")]
    # The model's own prose arithmetic is wrong, and the calculator says so ...
    assert result.steps[0]["answer"] != "411" and not result.steps[1]["parsed"]["accepted"]
    # ... then the refiner writes an expression, the calculator computes it, the verifier agrees.
    refiner = result.steps[2]
    assert refiner["role"] == "refiner" and refiner["parsed"]["program"] is not None
    assert refiner["flip"] == "wrong->right"
    assert result.answer == "411" and result.correct is True
    assert result.stop_reason == "verifier accepted" and result.rounds == 1
