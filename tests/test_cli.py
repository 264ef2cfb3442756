"""The CLI through Typer's runner: outputs, exit codes, and no tracebacks on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from concilium.agents.providers import scripted
from concilium.cli.app import app

runner = CliRunner()
TASK = "What is 17 * 24 + 3?"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
BAD = Path(__file__).parent / "bad_teams"


def test_run_prints_progress_answer_and_cost(examples: Path) -> None:
    with scripted.use("cli", scripted.Script({"generator": [WRONG], "refiner": [RIGHT]})):
        result = runner.invoke(app, ["run", str(examples / "gvr.yaml"), TASK,
                                     "--model", "scripted/cli"])
    assert result.exit_code == 0, result.output
    assert "Answer: 411" in result.stdout
    assert "2 LLM calls" in result.stdout and "stop: verifier accepted" in result.stdout
    progress = result.stderr
    assert "generator" in progress and "scripted/cli" in progress and "rejected" in progress
    assert "[changed]" in progress


def test_run_json_is_one_machine_readable_object(examples: Path) -> None:
    with scripted.use("cli", scripted.Script({"generator": [RIGHT]})):
        result = runner.invoke(app, ["run", str(examples / "single.yaml"), TASK,
                                     "--model", "scripted/cli", "--json", "-r", "411"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"] == "411" and data["correct"] is True
    assert data["usage"]["llm_calls"] == 1 and data["team"] == "single"
    assert data["steps"][0]["model"] == "scripted/cli"
    assert result.stderr == ""


def test_model_from_environment(examples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concilium.settings import get_settings

    monkeypatch.setenv("CONCILIUM_MODEL", "scripted/env")
    get_settings.cache_clear()
    with scripted.use("env", scripted.Script({"generator": [RIGHT]})) as script:
        result = runner.invoke(app, ["run", str(examples / "single.yaml"), TASK, "-q"])
    assert result.exit_code == 0, result.output
    assert script.count() == 1 and result.stderr.strip() == ""


def test_task_from_stdin(examples: Path) -> None:
    with scripted.use("cli", scripted.Script({"generator": [RIGHT]})) as script:
        result = runner.invoke(app, ["run", str(examples / "single.yaml"), "-",
                                     "--model", "scripted/cli", "-q"], input=TASK)
    assert result.exit_code == 0 and script.calls[0].prompt == TASK


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.name)
def test_bad_team_exits_2_with_one_line(path: Path) -> None:
    result = runner.invoke(app, ["run", str(path), TASK])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}")
    assert "Traceback" not in result.output


def test_real_console_script_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nstrategy: single\nroles:\n  generator:\n    temperature: hot\n")
    done = subprocess.run([sys.executable, "-m", "concilium.cli.app", "run", str(bad), "2+2"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {bad}:5: roles.generator.temperature: "
        "Input should be a valid number, unable to parse string as a number"
    )
    assert done.stdout == ""


def test_model_failure_exits_1(examples: Path) -> None:
    def down(call: scripted.ScriptCall) -> str:
        raise ConnectionError("down")

    with scripted.use("down", scripted.Script(default=down)):
        result = runner.invoke(app, ["run", str(examples / "single.yaml"), TASK,
                                     "--model", "scripted/down", "-q"])
    assert result.exit_code == 1
    assert "all models failed" in result.stderr and "Traceback" not in result.output


def test_empty_task_is_bad_input(examples: Path) -> None:
    result = runner.invoke(app, ["run", str(examples / "single.yaml"), "  "])
    assert result.exit_code == 2 and "task is empty" in result.stderr


def test_teams_list_show_validate_schema_graph(examples: Path, tmp_path: Path) -> None:
    listed = runner.invoke(app, ["teams", "list", str(examples)], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and "gvr-calculator" in listed.stdout

    shown = runner.invoke(app, ["teams", "show", str(examples / "gvr.yaml")])
    assert shown.exit_code == 0
    assert "check: calculator" in shown.stdout and "resolved_models" in shown.stdout

    ok = runner.invoke(app, ["teams", "validate", str(examples / "gvr.yaml")])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: ")
    bad = runner.invoke(app, ["teams", "validate", str(examples / "gvr.yaml"),
                              str(BAD / "unknown_strategy.yaml")])
    assert bad.exit_code == 2 and "valid strategies" in bad.stderr

    out = tmp_path / "schema.json"
    schema = runner.invoke(app, ["teams", "schema", "--out", str(out)])
    assert schema.exit_code == 0 and json.loads(out.read_text())["title"] == "concilium team"

    drawn = runner.invoke(app, ["teams", "graph", str(examples / "gvr.yaml")])
    assert drawn.exit_code == 0
    assert "verifier -.-> refiner" in drawn.stdout and "refiner --> verifier" in drawn.stdout


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from concilium.cli.app import app; "
        "heavy = [m for m in ('litellm', 'langgraph', 'llama_cpp', 'sqlalchemy') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-m", "concilium.cli.app", "--help"],
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "teams" in helped.stdout
