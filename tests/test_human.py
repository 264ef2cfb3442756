"""A person in the loop: ``role: human``, ``interrupt: before|after``, paused runs.

The person is played by the test: through ``ask`` (in process), ``answer=`` on
resume (the next call, or another process), and a real ``concilium run`` in a
pseudo-terminal typing at its prompt. Models are the ``scripted/`` provider.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.errors import ConfigError
from concilium.team import RunNotResumable, resume_run

TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "teams"


def gvr_human() -> dict[str, Any]:
    return {
        "name": "h",
        "strategy": "gvr",
        "limits": {"max_rounds": 2},
        "roles": {"generator": {}, "verifier": {"role": "human"}, "refiner": {}},
    }


def kinds(result: Any) -> list[tuple[str, str]]:
    return [(s["node"], s["kind"]) for s in result.steps]


async def test_a_person_rejects_and_the_refiner_gets_their_reason() -> None:
    """Paused at the person's check; each answer resumes it; the reply is a real verdict."""
    script = scripted.Script({"generator": [WRONG], "refiner": [RIGHT]})
    with scripted.use("h1", script):
        team = load_team(gvr_human(), model="scripted/h1")
        first = await team.arun(TASK, run_id="h-1", reference="411")
        assert first.status == "paused" and first.answer == "403"
        [question] = first.pending
        assert question["node"] == "verifier" and question["kind"] == "verifier"
        assert "Is the final answer 403 correct?" in question["question"]
        assert "yes or no" in question["hint"]
        second = await resume_run("h-1", answer="no, 17 * 24 is 408")
        assert second.status == "paused" and second.answer == "411"
        done = await resume_run("h-1", answer="yes")
    assert done.status == "ok" and done.stop_reason == "verifier accepted"
    assert done.answer == "411" and done.correct is True
    assert kinds(done) == [
        ("generator", "llm"),
        ("verifier", "human"),
        ("refiner", "llm"),
        ("verifier", "human"),
    ]
    assert "no, 17 * 24 is 408" in script.calls[1].text  # the refiner read the reason
    assert done.usage.llm_calls == 2 and done.usage.tool_calls == 0
    assert done.flips["wrong->right"] == 1
    with pytest.raises(RunNotResumable):  # finished: nothing left to answer
        await resume_run("h-1", answer="yes")


async def test_ask_answers_at_once_and_nothing_is_paid_twice() -> None:
    asked: list[dict[str, Any]] = []

    def person(question: dict[str, Any]) -> str:
        asked.append(question)
        return "no: 17 * 24 = 408" if len(asked) == 1 else "yes"

    with scripted.use("h2", scripted.Script({"generator": [WRONG], "refiner": [RIGHT]})) as s:
        result = await load_team(gvr_human(), model="scripted/h2").arun(TASK, ask=person)
    assert result.status == "ok" and result.answer == "411"
    assert len(asked) == 2 and s.count() == 2  # the re-run node's calls: from the journal
    assert len({step["id"] for step in result.steps}) == len(result.steps) == 4


async def test_answering_a_run_that_does_not_wait_is_refused() -> None:
    team = {"name": "s", "strategy": "single", "roles": {"generator": {}}}
    with scripted.use("h3", scripted.Script({"generator": [WRONG]})):
        await load_team(team, model="scripted/h3").arun(
            TASK, run_id="h-3", durable=True, record=True
        )
    with pytest.raises(RunNotResumable):
        await resume_run("h-3", answer="yes")


async def test_a_person_is_one_debater_and_sees_the_others() -> None:
    team = load_team(EXAMPLES / "debate_human.yaml", model="scripted/h4")
    with scripted.use("h4", scripted.Script({"model": [WRONG, RIGHT]})) as script:
        paused = await team.arun(TASK, run_id="h-4")
        assert [q["node"] for q in paused.pending] == ["you"]
        again = await resume_run("h-4", answer="I get 408 + 3.\nAnswer: 411")
        [question] = again.pending
        assert "403" in question["question"] and "[model]" in question["question"]
        done = await resume_run("h-4", answer="Answer: 411")
    assert done.status == "ok" and done.answer == "411"
    assert "Answer: 411" in script.calls[1].text  # the model read the person's answer
    assert sorted(s["kind"] for s in done.steps) == ["human", "human", "llm", "llm"]


GATED = {
    "name": "g",
    "strategy": "gvr",
    "limits": {"max_rounds": 1},
    "roles": {
        "generator": {"interrupt": "after"},
        "verifier": {"check": "calculator"},
        "refiner": {"interrupt": "before"},
    },
}


async def test_after_a_node_a_person_corrects_its_answer() -> None:
    replies = iter(["17 * 24 = 408, so 411.\nAnswer: 411"])
    with scripted.use("h5", scripted.Script({"generator": [WRONG]})) as script:
        result = await load_team(GATED, model="scripted/h5").arun(
            TASK, ask=lambda q: next(replies), reference="411"
        )
    assert result.status == "ok" and result.answer == "411" and result.correct
    assert script.count() == 1 and result.stop_reason == "verifier accepted"
    person = result.steps[1]
    assert person["kind"] == "human" and person["flip"] == "wrong->right"


async def test_before_a_node_a_person_may_stop_the_run() -> None:
    asked: list[dict[str, Any]] = []

    def person(question: dict[str, Any]) -> str:
        asked.append(question)
        return "" if question["type"] == "after" else "stop"

    with scripted.use("h6", scripted.Script({"generator": [WRONG]})) as script:
        result = await load_team(GATED, model="scripted/h6").arun(TASK, ask=person)
    assert [q["type"] for q in asked] == ["after", "before"]
    assert [q["node"] for q in asked] == ["generator", "refiner"]
    assert result.status == "stopped" and result.stop_reason == "stopped by a person before refiner"
    assert script.count("refiner") == 0 and result.answer == "403"


async def test_a_person_plays_a_kind_the_team_declares() -> None:
    team = {
        "name": "d",
        "strategy": {
            "name": "graph",
            "edges": [
                {"from": "solver", "to": "checker"},
                {"from": "checker", "to": "end", "when": "verdict.accepted"},
                {"from": "checker", "to": "solver", "when": "rounds < 1"},
            ],
            "finish": ["checker"],
        },
        "kinds": {
            "auditor": {
                "output": "verdict",
                "prompt": {"system": "Audit the arithmetic.", "user": "{{ task }} -> {{ final }}"},
            }
        },
        "roles": {
            "solver": {"role": "generator"},
            "checker": {"role": "human", "plays": "auditor"},
        },
    }
    seen: list[dict[str, Any]] = []
    with scripted.use("h7", scripted.Script({"solver": [WRONG, RIGHT]})):
        result = await load_team(team, model="scripted/h7").arun(
            TASK, ask=lambda q: seen.append(q) or ("no" if len(seen) == 1 else "yes")
        )
    assert [q["question"] for q in seen] == [f"{TASK} -> 403", f"{TASK} -> 411"]
    assert seen[0]["hint"] == "Audit the arithmetic." and seen[0]["kind"] == "auditor"
    assert result.answer == "411" and result.stop_reason == "checker -> end (verdict.accepted)"


def test_a_person_must_play_a_kind() -> None:
    with pytest.raises(ConfigError, match="plays"):
        load_team({"name": "x", "strategy": "single", "roles": {"generator": {}, "human": {}}})
    with pytest.raises(ConfigError, match="a person is asked, not a tool"):
        load_team(
            {
                "name": "x",
                "strategy": "gvr",
                "roles": {"generator": {}, "verifier": {"role": "human", "check": "calculator"}},
            }
        )
    with pytest.raises(ConfigError, match="no node of role"):
        load_team(
            {
                "name": "x",
                "strategy": "self_consistency",
                "roles": {"generator": {"interrupt": "after", "temperature": 0.7}},
            }
        )


# ---------------------------------------------------------------------------- processes

CLI = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
SCRIPT = {"rules": [{"role": "generator", "reply": WRONG}, {"role": "refiner", "reply": RIGHT}]}


def cli_env(tmp_path: Path) -> dict[str, str]:
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "people.yaml").write_text(json.dumps(SCRIPT))
    env = {
        **os.environ,
        "CONCILIUM_HOME": str(tmp_path / "home"),
        "CONCILIUM_REDIS_URL": "",
        "CONCILIUM_SCRIPTS_DIR": str(scripts),
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("CONCILIUM_DATABASE_URL", None)
    return env


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


class Terminal:
    """A process on a pseudo-terminal: read what it shows, type at its prompt."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            args, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.seen = ""

    def read_until(self, text: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} never shown; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    chunk = os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the process ended and closed the terminal
                    chunk = ""
                if not chunk and self.process.poll() is not None:
                    raise AssertionError(f"exited before showing {text!r}:\n{self.seen}")
                self.seen += chunk
        found = self.seen
        self.seen = self.seen[self.seen.index(text) + len(text) :]
        return found

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        code = self.process.wait(300)
        os.close(self.master)
        return code


def test_concilium_run_asks_at_the_terminal(tmp_path: Path) -> None:
    """A real ``concilium run`` in a pseudo-terminal: the person answers at its prompt."""
    env = cli_env(tmp_path)
    term = Terminal(
        [
            sys.executable,
            "-c",
            CLI,
            "run",
            str(EXAMPLES / "gvr_human.yaml"),
            TASK,
            "-m",
            "scripted/people",
            "--run-id",
            "tty-1",
        ],
        env,
    )
    try:
        shown = term.read_until("> ")
        assert "a person is asked at verifier (verifier)" in shown
        assert "Is the final answer 403 correct?" in shown
        term.type("no, 17 * 24 is 408")
        shown = term.read_until("> ")
        assert "Is the final answer 411 correct?" in shown
        term.type("yes")
        shown = term.read_until("Answer: 411")
        term.read_until("stop: verifier accepted")
    finally:
        code = term.close()
    assert code == 0
    listed = cli("runs", "show", "tty-1", "--json", env=env)
    steps = json.loads(listed.stdout)["steps"]
    assert [(s["node"], s["kind"], s["output"]) for s in steps if s["kind"] == "human"] == [
        ("verifier", "human", "no, 17 * 24 is 408"),
        ("verifier", "human", "yes"),
    ]


def test_without_a_terminal_the_run_pauses_and_another_process_answers(tmp_path: Path) -> None:
    """No terminal: ``concilium run`` stops paused and says how to answer; the answer, in
    a new process (the first one is gone), finishes the run from its checkpoint."""
    env = cli_env(tmp_path)
    first = cli(
        "run",
        str(EXAMPLES / "gvr_human.yaml"),
        TASK,
        "-m",
        "scripted/people",
        "--run-id",
        "later-1",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    assert "paused: run later-1 waits for a person at verifier" in first.stderr
    assert "concilium runs resume later-1 --answer" in first.stderr
    listed = cli("runs", "list", "--status", "paused", "--json", env=env)
    assert json.loads(listed.stdout.splitlines()[0])["id"] == "later-1"
    second = cli("runs", "resume", "later-1", "--answer", "no, 17 * 24 is 408", "--json", env=env)
    assert json.loads(second.stdout)["status"] == "paused", second.stderr
    third = cli("runs", "resume", "later-1", "--answer", "yes", "--json", env=env)
    result = json.loads(third.stdout)
    assert result["status"] == "ok" and result["answer"] == "411", third.stderr
    assert result["usage"]["llm_calls"] == 2
