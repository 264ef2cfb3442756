"""The Python sandbox, the answer check, and the verifier checks built on them."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from waiting import wait_for

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.agents.roles import checks
from concilium.agents.roles.results import Answer
from concilium.tools import get_tool
from concilium.tools.answer_check import check_answer
from concilium.tools.sandbox import SandboxLimits, run_python, run_python_sync


async def test_runs_code_and_captures_its_output() -> None:
    result = await run_python("import sys\nprint('x')\nprint(74 * 18 - 32)\n"
                              "print('oops', file=sys.stderr)")
    assert result.ok and result.last_line == "1300"
    assert result.stdout == "x\n1300\n" and result.stderr == "oops\n"


async def test_stdin_is_fed_to_the_program() -> None:
    result = await run_python("print(int(input()) * 2)", stdin="21\n")
    assert result.last_line == "42"


async def test_wall_clock_timeout_kills_the_whole_process_group() -> None:
    code = ("import os, time\npid = os.fork()\n"
            "if pid == 0:\n    time.sleep(60)\nelse:\n    print(pid, flush=True)\n"
            "    while True: pass\n")
    start = time.perf_counter()
    # 5 s: time for the program to start and print its child's pid on a loaded machine.
    result = await run_python(code, limits=SandboxLimits(timeout_s=5.0))
    assert result.timed_out and not result.ok
    assert time.perf_counter() - start < 30  # not the sleeping grandchild's 60 s
    assert "time limit" in result.error()
    child = int(result.stdout.split()[0])
    status = Path(f"/proc/{child}/status")

    def dead() -> bool:
        try:
            return "\nState:\tZ" in status.read_text()
        except FileNotFoundError:
            return True

    # The forked grandchild died with its group (gone, or a zombie nobody has reaped yet).
    wait_for(dead, what=f"the forked grandchild {child} to die with its group")


async def test_cpu_limit_stops_a_busy_loop() -> None:
    result = await run_python("while True: pass", limits=SandboxLimits(timeout_s=120, cpu_s=1))
    assert not result.timed_out and result.returncode is not None and result.returncode < 0
    assert "CPU time limit" in result.error()


async def test_memory_limit_raises_memory_error() -> None:
    result = await run_python("x = bytearray(3 * 1024 ** 3)",
                              limits=SandboxLimits(memory_mb=256))
    assert not result.ok and "MemoryError" in result.error()


async def test_output_is_capped() -> None:
    result = await run_python("while True: print('y' * 1000)",
                              limits=SandboxLimits(output_bytes=20_000, timeout_s=60))
    assert not result.ok and len(result.stdout) <= 20_000


async def test_no_network() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
        result = await run_python(code)
        assert not result.ok and "network access is disabled" in result.stderr
        raw = (f"import _socket\ns = _socket.socket()\ns.settimeout(2)\n"
               f"s.connect(('127.0.0.1', {port}))\nprint('connected')")
        namespaced = (await run_python("import os; print(os.readlink('/proc/self/ns/net'))"))
        if namespaced.last_line == os.readlink("/proc/self/ns/net"):
            pytest.skip("this kernel does not let us create a network namespace")
        result = await run_python(raw)
        assert not result.ok and "connected" not in result.stdout
    finally:
        server.close()


async def test_fresh_directory_and_no_inherited_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    code = "import os\nopen('f.txt', 'w').write('x')\nprint(os.getcwd())\nprint(sorted(os.environ))"
    result = await run_python(code)
    workdir, env = result.stdout.splitlines()
    assert "OPENAI_API_KEY" not in env and "sk-secret" not in result.stdout
    assert workdir != os.getcwd() and not Path(workdir).exists()  # removed afterwards


def test_sync_runner_and_langchain_tools() -> None:
    assert run_python_sync("print(2 ** 10)").last_line == "1024"
    assert get_tool("python").invoke({"code": "print(6 * 7)"}).strip() == "42"
    assert get_tool("python").invoke({"code": "1/0"}).startswith("error: ")
    check = get_tool("answer_check")
    assert check.invoke({"answer": "so it is 1,300.", "reference": "1300"}) == "correct"
    assert check.invoke({"answer": "B", "reference": "(C)", "format": "choice"}).startswith(
        "incorrect")


@pytest.mark.parametrize(("answer", "reference", "fmt", "correct"), [
    ("1300", "1300", "number", True),
    ("Total: $1,300.00", "1300", "number", True),
    ("1300.0000001", "1300", "number", True),
    ("1301", "1300", "number", False),
    ("The answer is (B).", "B", "choice", True),
    ("The Eiffel tower!", "eiffel tower", "text", True),
    (None, "3", "number", False),
])
def test_answer_check(answer: str | None, reference: str, fmt: str, correct: bool) -> None:
    assert check_answer(answer, reference, fmt).correct is correct  # type: ignore[arg-type]


def test_reference_verdict_never_reveals_the_reference() -> None:
    verdict = checks.reference_verdict(Answer(text="Answer: 41", value="41"), "42")
    assert not verdict.accepted and "42" not in verdict.feedback + verdict.reason
    assert checks.reference_verdict(Answer(text="", value="42"), "42").accepted


CODE_TASK = """Write a Python function add(a, b) that returns the sum of a and b.
Tests:
```python
assert add(2, 3) == 5
assert add(-1, 1) == 0
```"""


async def test_tests_verdict_runs_the_tests_from_the_task() -> None:
    assert checks.tests_in(CODE_TASK) == "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
    assert checks.tests_in("Make f. assert f(1) == 2") == ""  # only whole assert lines count
    good = await checks.tests_verdict(CODE_TASK, Answer(text="```python\ndef add(a, b):\n"
                                                      "    return a + b\n```"))
    assert good.accepted and good.checked_by == "tests"
    bad = await checks.tests_verdict(CODE_TASK, Answer(text="def add(a, b):\n    return a - b"))
    assert not bad.accepted and "assert add(2, 3) == 5" in bad.feedback
    assert "AssertionError" in bad.feedback


async def test_a_tests_verifier_drives_refinement_of_code() -> None:
    spec = {"name": "code", "strategy": "gvr", "answer": {"format": "code"},
            "roles": {"generator": {}, "verifier": {"check": "tests"}, "refiner": {}}}
    buggy = "```python\ndef add(a, b):\n    return a - b\n```"
    fixed = "```python\ndef add(a, b):\n    return a + b\n```"
    with scripted.use("t1", scripted.Script({"generator": [buggy], "refiner": [fixed]})) as s:
        result = await load_team(spec, model="scripted/t1").arun(CODE_TASK)
    assert [st["role"] for st in result.steps] == ["generator", "verifier", "refiner", "verifier"]
    assert "AssertionError" in s.calls[1].prompt  # the refiner saw the failing test
    assert result.stop_reason == "verifier accepted"
    assert result.steps[-1]["model"] == "tests"
