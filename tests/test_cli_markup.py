"""Data in CLI output is printed as text, never read as rich markup.

Before, ``[str]`` vanished from an error (rich took it for a style) and ``[/x]``
raised ``MarkupError``, so the user saw a rich traceback instead of the real error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from concilium.agents.providers import scripted
from concilium.cli.app import app

runner = CliRunner()
TASK = "What is [str] 6 * 7 [/x]?"
TEAM = "name: t\nstrategy: single\nroles:\n  generator: {}\n"


def _team(directory: Path, text: str) -> Path:
    """A team file at ``directory/x[/x].yaml``: the brackets become part of the path."""
    path = directory / "x[" / "x].yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def _no_markup_crash(output: str) -> None:
    assert "MarkupError" not in output and "Traceback" not in output


def test_error_with_brackets_is_printed_whole(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("name: t\nstrategy: '[str]'\nroles:\n  generator: {}\n")
    result = runner.invoke(app, ["run", str(path), TASK, "-m", "scripted/markup"])
    assert result.exit_code == 2, result.output
    _no_markup_crash(result.output)
    assert f"error: {path}:2: strategy.name: unknown strategy '[str]'" in result.stderr


def test_closing_tag_in_a_path_and_a_role_name_is_not_markup(tmp_path: Path) -> None:
    path = _team(tmp_path, "name: t\nstrategy: single\nroles:\n  x[/x]: {}\n")
    result = runner.invoke(app, ["run", str(path), TASK, "-m", "scripted/markup"])
    assert result.exit_code == 2, result.output
    _no_markup_crash(result.output)
    assert str(path) in result.stderr and "roles.x[/x]: unknown role kind 'x[/x]'" in (
        result.stderr
    )
    shown = runner.invoke(app, ["teams", "validate", str(path)])
    assert shown.exit_code == 2 and "roles.x[/x]" in shown.output


def test_run_prints_run_id_and_model_as_text(tmp_path: Path) -> None:
    path = _team(tmp_path, TEAM)
    reply = "6 * 7 = 42 [bold]not bold[/bold] [/x]\nAnswer: 42"  # (answers are normalised)
    with scripted.use("m[/x]", scripted.Script({"generator": [reply]})):
        result = runner.invoke(app, ["run", str(path), TASK, "-m", "scripted/m[/x]",
                                     "--run-id", "run[/x]"])
    assert result.exit_code == 0, result.output
    _no_markup_crash(result.output)
    assert "t (single) run run[/x]" in result.stderr
    assert "scripted/m[/x]" in result.stderr and "answer=42" in result.stderr
    assert "Answer: 42" in result.stdout
    listed = runner.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0 and "run[/x]" in listed.stdout, listed.output


def test_teams_list_marks_invalid_files_in_red_not_in_brackets(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: t\nstrategy: '[/x]'\nroles:\n  generator: {}\n")
    result = runner.invoke(app, ["teams", "list", str(tmp_path)])
    assert result.exit_code == 2
    _no_markup_crash(result.output)
    assert "[red]" not in result.stdout and "invalid" in result.stdout
    assert "'[/x]'" in result.stdout.replace("\n", "")


def test_eval_tables_print_dataset_names_as_text(tmp_path: Path) -> None:
    data = tmp_path / "d[str]"
    data.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "eval_known.jsonl", data / "known[bold].jsonl")
    team = tmp_path / "single.yaml"
    team.write_text(TEAM)
    with scripted.use("markup", scripted.Script(rules=[scripted.Rule(lambda c: "Answer: 7")])):
        result = runner.invoke(app, ["eval", str(team), "-d", str(data / "known[bold].jsonl"),
                                     "--limit", "2", "-m", "scripted/markup",
                                     "-o", str(tmp_path / "out")])
    _no_markup_crash(result.output)
    assert result.exit_code in (0, 1), result.output
    assert "d[str]-known[bold]: 2 items" in result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dataset"]["name"] == "d[str]-known[bold]"
