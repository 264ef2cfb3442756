"""Every command's help: an example that names real options, rich text that keeps every
word; and shell completion, generated and answered by the real ``concilium`` program."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from concilium.cli.app import app
from concilium.cli.help import EXAMPLES

REPO = Path(__file__).resolve().parent.parent
CLI = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
runner = CliRunner()


def commands() -> dict[str, Any]:
    """Every command of the CLI by its path (``runs resume``), groups with a callback too."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: str) -> None:
        subs = getattr(command, "commands", None)
        if not subs or getattr(command, "invoke_without_command", False):
            found[path] = command
        for name, sub in (subs or {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def test_every_command_has_help_and_an_example_with_real_options() -> None:
    found = commands()
    assert set(found) == set(EXAMPLES), "EXAMPLES and the commands differ"
    for path, command in found.items():
        assert (command.help or "").strip(), f"{path} has no help"
        words = shlex.split(EXAMPLES[path])
        assert words[: 1 + len(path.split())] == ["concilium", *path.split()], path
        names = {n for p in command.params for n in getattr(p, "opts", [])}
        for word in words:
            if word.startswith("-"):
                assert word in names, f"{path}: the example's {word} is not an option"


@pytest.mark.parametrize("path", ["run", "eval", "serve", "runs resume", "teams graph"])
def test_help_shows_the_example_and_every_bracketed_word(path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Example: {EXAMPLES[path]}" in " ".join(result.output.split())
    if path == "eval":  # written in the option's help; rich would take it for a style
        assert "[default: reports/<dataset>]" in result.output
        assert "[default: each team's answer.format]" in " ".join(result.output.split())


def complete(words: str, env: dict[str, str]) -> list[str]:
    """What bash completion offers for ``words`` (the last one being typed)."""
    parts = words.split(" ")
    done = subprocess.run(
        [sys.executable, "-c", CLI],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **env,
            "_CONCILIUM_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
        },
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion_is_installable_and_completes_commands(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "CONCILIUM_HOME": str(tmp_path / "home"),
        "SHELL": "/bin/bash",
        "HOME": str(tmp_path),
        # Typer detects the shell from the parent processes (shellingham) unless told not
        # to; under a runner with no shell above it that found none ("Shell  not
        # supported"). Disabled, ``--show-completion bash`` takes the shell named.
        "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1",
    }
    shown = subprocess.run(
        [sys.executable, "-c", CLI, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert "_CONCILIUM_COMPLETE=complete_bash" in shown.stdout
    installed = subprocess.run(
        [sys.executable, "-c", CLI, "--install-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr
    assert "concilium" in (tmp_path / ".bashrc").read_text()
    assert complete("concilium ru", env) == ["run", "runs"]
    assert complete("concilium runs re", env) == ["resume"]
    assert "--answer" in complete("concilium runs resume abc --ans", env)
