"""A durable run killed after its role called a tool: the resumed run does not call it again.

The tool is a user's Python tool (an import path, as a team file names one) whose side
effect is a line appended to a file; its result is the number of lines the file has
then, and the scripted model answers with that number. The run is cancelled while its
second model call hangs (after the tool ran and its result was journaled), then
resumed: the file must still have one line and the answer must be the uninterrupted
run's. A tool that fails after its side effect is journaled as the error it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from waiting import wait_for, wait_for_async

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.memory.db import open_database
from concilium.memory.ledger import flush

TASK = "Write the line once, then say how many lines the file has."
STALL_S = 600.0

SIDE_EFFECT_TOOLS = '''
import os


def append_line(text: str) -> str:
    """Append a line to the side-effect file and say how many lines it has now.

    Args:
        text: the line to append.
    """
    path = os.environ["TJ_SIDE_EFFECT"]
    with open(path, "a", encoding="utf-8") as out:
        out.write(text + "\\n")
    with open(path, encoding="utf-8") as again:
        return str(len(again.read().splitlines()))


def append_then_fail(text: str) -> str:
    """Append a line to the side-effect file, then fail.

    Args:
        text: the line to append.
    """
    append_line(text)
    raise RuntimeError("the disk is full after " + text)
'''


@pytest.fixture
def side_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The module ``tj_tools`` importable, its tools writing to the returned file."""
    (tmp_path / "tj_tools.py").write_text(SIDE_EFFECT_TOOLS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "side-effect.txt"
    monkeypatch.setenv("TJ_SIDE_EFFECT", str(path))
    return path


def team_of(tool: str, model: str) -> Any:
    return load_team({"name": "tj", "strategy": "single", "model": f"scripted/{model}",
                      "roles": {"generator": {"tools": [f"tj_tools:{tool}"]}}})


def first_reply(tool: str) -> str:
    return f'<tool_call>{{"name": "{tool}", "arguments": {{"text": "hello"}}}}'


def answer_from_result(call: scripted.ScriptCall) -> str:
    found = re.search(r"<tool_result[^>]*>(.*?)</tool_result>", call.messages[-1]["content"],
                      re.S)
    assert found is not None, call.messages[-1]
    result = found.group(1)
    return f"The file has {result} lines.\nAnswer: {result}" if result.isdigit() else (
        f"The tool said {result}.\nAnswer: 0")


def script_for(tool: str, *, hang_second: bool = False, resumed: bool = False,
               ) -> tuple[scripted.Script, list[int]]:
    """The model: call ``tool``, then answer from its result (``resumed``: only answer).
    With ``hang_second`` the second call hangs; the returned list gets one entry as each
    call starts."""
    started: list[int] = []

    def latency(_call: scripted.ScriptCall) -> float:
        started.append(len(started))
        return STALL_S if hang_second and len(started) >= 2 else 0.0

    replies = [answer_from_result] if resumed else [first_reply(tool), answer_from_result]
    script = scripted.Script({"generator": replies},
                             latency_s=latency)
    return script, started


def journal_rows(run_id: str) -> int:
    db = open_database()
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM calls WHERE run_id = :r"),
                                {"r": run_id}).scalar() or 0)


def ledger_steps(run_id: str) -> list[dict[str, Any]]:
    flush()
    with open_database().engine.connect() as conn:
        rows = conn.execute(text("SELECT uid, node, role FROM steps WHERE run_id = :r"),
                            {"r": run_id})
        return [dict(row._mapping) for row in rows]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.mark.parametrize(("tool", "answer"), [("append_line", "1"),
                                              ("append_then_fail", "0")])
async def test_a_resumed_run_does_not_call_a_tool_again(
    side_effect: Path, tool: str, answer: str
) -> None:
    model = f"tj-{tool}"
    # The uninterrupted run, for comparison.
    whole_script, _ = script_for(tool)
    with scripted.use(model, whole_script):
        whole = await team_of(tool, model).arun(TASK, run_id=f"whole-{tool}")
    assert whole.status == "ok" and whole.answer == answer
    assert lines(side_effect) == ["hello"]
    expected_tool_output = next(s for s in whole.steps if s["kind"] == "tool")["output"]
    side_effect.unlink()

    # The same run, cancelled while its second model call hangs: the tool has run.
    run_id = f"killed-{tool}"
    first, started = script_for(tool, hang_second=True)
    with scripted.use(model, first):
        running = asyncio.create_task(team_of(tool, model).arun(TASK, run_id=run_id))
        await wait_for_async(lambda: len(started) >= 2,
                             what="the second model call (after the tool call) to start",
                             task=running)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert lines(side_effect) == ["hello"]
    journaled = journal_rows(run_id)

    # Resumed: the first turn and the tool call come from the journal, the tool does not
    # run again, and the run ends as the uninterrupted one did.
    again, _ = script_for(tool, resumed=True)
    with scripted.use(model, again):
        result = await team_of(tool, model).aresume(run_id)
    assert lines(side_effect) == ["hello"]
    assert journaled == 2  # the first model call and the tool call
    assert result.status == "ok" and result.answer == whole.answer == answer
    assert again.count() == 1  # only the call that was cut off
    steps = [s for s in result.steps if s["kind"] == "tool"]
    assert len(steps) == 1 and steps[0]["output"] == expected_tool_output
    assert steps[0]["parsed"].get("replayed") is True
    assert steps[0]["parsed"]["ok"] is (tool == "append_line")
    ledger = ledger_steps(run_id)  # the cut-off exchange was recorded once, not twice
    assert len(ledger) == len(result.steps) == len({s["uid"] for s in ledger})
    if tool == "append_then_fail":
        assert steps[0]["output"] == (
            "error: tool 'append_then_fail' failed: RuntimeError: the disk is full after hello")


# ---------------------------------------------------------------------------- a real kill

SCRIPT = {
    "rules": [{"match": 'tool_result name="append_line"',
               "reply": "The file has 1 lines.\nAnswer: 1"}],
    "default": first_reply("append_line"),
}
CLI = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
STALLING_CLI = f"""\
import sys
from pathlib import Path
from concilium.agents.providers import scripted
name, after, marker = sys.argv.pop(1), int(sys.argv.pop(1)), Path(sys.argv.pop(1))

def latency(_call):
    if script.count() < after:
        return 0.0
    marker.touch()  # this call has started: the test may kill the process now
    return {STALL_S}

script = scripted.get(name)  # from CONCILIUM_SCRIPTS_DIR
script.latency_s = latency
{CLI}
"""


def test_sigkill_after_a_tool_call_then_runs_resume(tmp_path: Path, side_effect: Path) -> None:
    """Kill -9 a real ``concilium run`` whose role has called a side-effecting tool and
    waits on its next model call; ``concilium runs resume`` finishes it without calling
    the tool again."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "tjcli.yaml").write_text(json.dumps(SCRIPT))
    team = tmp_path / "team.yaml"
    team.write_text(json.dumps({"name": "tj", "strategy": "single", "model": "scripted/tjcli",
                                "roles": {"generator": {"tools": ["tj_tools:append_line"]}}}))
    home = tmp_path / "home"
    repo = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (str(tmp_path), repo, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "CONCILIUM_HOME": str(home), "CONCILIUM_SCRIPTS_DIR": str(scripts),
           "CONCILIUM_REDIS_URL": "", "PYTHONPATH": path}
    env.pop("CONCILIUM_DATABASE_URL", None)
    marker = tmp_path / "second-call-started"

    first = subprocess.Popen(
        [sys.executable, "-c", STALLING_CLI, "tjcli", "1", str(marker), "run", str(team),
         TASK, "--run-id", "tj-kill", "-q"],
        env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(marker.exists, process=first,
                 what="the model call after the tool call to start")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=600)
    assert first.returncode == -signal.SIGKILL
    assert lines(side_effect) == ["hello"]

    second = subprocess.Popen([sys.executable, "-c", CLI, "runs", "resume", "tj-kill", "--json"],
                              env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    result = json.loads(out)
    assert lines(side_effect) == ["hello"]  # the tool did not run again
    assert result["status"] == "ok" and result["answer"] == "1"
    tool = next(s for s in result["steps"] if s["kind"] == "tool")
    assert tool["output"] == "1" and tool["parsed"].get("replayed") is True
