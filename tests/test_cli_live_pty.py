"""``concilium run``'s live view on a real pseudo-terminal, and secrets in streamed text.

The CLI runs as a child process whose output is a pty made here (stdlib ``pty``):
with stdin a terminal too it streams plain ``[node rN]`` lines (a person could be
asked there); with stdin elsewhere it draws rich's Live area, one panel per call in
flight. The model is the ``scripted/`` provider (streaming word by word) or, where the
test must see a panel while the reply is provably unfinished, the SSE model server
holding its stream after the first piece.

A model's reply that carries a key (a known secret's value, or a ``Bearer`` token cut
into two pieces by the stream) must reach the terminal masked, as it reaches the
ledger: the live deltas used to be written as they came.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from waiting import wait_for

from concilium.cli.live import LiveView
from concilium.secrets import StreamRedactor

REPO = Path(__file__).resolve().parent.parent
CLI = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
SECRET = "hunter2-demo-secret"
TOKEN = "abcdefghijklmnopqrstuvwxyz0123"
REPLY = (f"Let me work it out.\nThe key is {SECRET} and the header Bearer {TOKEN} here.\n"
         "6 times 7 is 42.\nAnswer: 42")
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")


class Terminal:
    """A child process on a pseudo-terminal, and everything it wrote there."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path,
                 stdin_tty: bool) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.master = master
        self.process = subprocess.Popen(
            args, stdin=slave if stdin_tty else subprocess.DEVNULL, stdout=slave,
            stderr=slave, env=env, cwd=cwd, close_fds=True)
        os.close(slave)
        self.raw = b""
        self.eof = False

    def read(self) -> str:
        """What the child wrote so far (reads what is there without waiting)."""
        while not self.eof and select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError as error:  # EIO: every writer closed its end
                if error.errno != errno.EIO:
                    raise
                chunk = b""
            if not chunk:
                self.eof = True
            self.raw += chunk
        return self.text

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def plain(self) -> str:
        """The output without escape sequences and carriage returns."""
        return ANSI.sub("", self.text).replace("\r", "")

    def seen(self, needle: str) -> bool:
        self.read()
        return needle in self.plain

    def finish(self) -> int:
        """Read to the end of the output; the child's exit code."""
        wait_for(lambda: self.read() is not None and self.eof,
                 what="the CLI to close the terminal")
        code = self.process.wait(timeout=300)
        os.close(self.master)
        return code


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    found = {**os.environ, "PYTHONPATH": str(REPO), "CONCILIUM_HOME": str(tmp_path / "home"),
             "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40",
             "DEMO_API_KEY": SECRET, "OPENAI_API_KEY": "unused-key"}
    for name in ("NO_COLOR", "CONCILIUM_DATABASE_URL", "CONCILIUM_REDIS_URL", "CI",
                 "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        found.pop(name, None)
    return found


def test_plain_live_lines_on_a_terminal_stream_redacted_text(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """stdin and stderr a terminal: the streamed text as ``[node rN]`` lines, masked."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "pty.yaml").write_text(json.dumps({"default": REPLY}))
    team = tmp_path / "team.yaml"
    team.write_text(json.dumps({"name": "live-pty", "strategy": "single",
                                "model": "scripted/pty", "roles": {"generator": {}}}))
    terminal = Terminal([sys.executable, "-c", CLI, "run", str(team), "What is 6 times 7?"],
                        env={**env, "CONCILIUM_SCRIPTS_DIR": str(scripts)}, cwd=tmp_path,
                        stdin_tty=True)
    code = terminal.finish()
    shown = terminal.plain
    assert code == 0, shown
    assert "live-pty (single) run" in shown
    assert "[generator r0] Let me work it out.\nThe key is *** and the header Bearer *** " \
           "here.\n6 times 7 is 42.\nAnswer: 42\n" in shown
    assert re.search(r"r0 generator +scripted/pty", shown)  # the step line
    assert "\nAnswer: 42\n" in shown  # the result, on stdout
    assert SECRET not in terminal.text and TOKEN not in terminal.text


@pytest.fixture
def sse_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The SSE model server replying :data:`REPLY`, holding its stream after the first
    piece until ``gate`` exists."""
    gate = tmp_path / "gate"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "sse_model_server.py"), "--reply", REPLY,
         "--gate", str(gate)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    try:
        yield {"url": f"http://127.0.0.1:{port}/v1", "gate": gate}
    finally:
        process.terminate()
        process.wait(10)


def test_rich_live_view_on_a_terminal(
    tmp_path: Path, env: dict[str, str], sse_server: dict[str, Any]
) -> None:
    """stdin elsewhere: rich's Live area shows the call's panel (node, role, round) with
    its first piece while the server holds back the rest; then the step line and the
    answer, exit 0, and no secret on the terminal."""
    team = tmp_path / "team.yaml"
    team.write_text(json.dumps({"name": "live-rich", "strategy": "single",
                                "model": "openai/fake", "api_base": sse_server["url"],
                                "roles": {"generator": {}}}))
    terminal = Terminal([sys.executable, "-c", CLI, "run", str(team), "What is 6 times 7?"],
                        env=env, cwd=tmp_path, stdin_tty=False)
    try:
        wait_for(lambda: terminal.seen("generator · generator · r0")
                 and terminal.seen("Let "), what="the panel with the first piece",
                 process=terminal.process)
        assert not sse_server["gate"].exists()  # the rest of the reply is not sent yet
        assert "╭" in terminal.text  # a rich panel, drawn on the terminal
    finally:
        sse_server["gate"].touch()
    code = terminal.finish()
    shown = terminal.plain
    assert code == 0, shown
    assert re.search(r"r0 generator +openai/fake", shown)  # the step line
    assert "Answer: 42" in shown
    assert SECRET not in terminal.text and TOKEN not in terminal.text


# ---------------------------------------------------------------------------- in process


def test_stream_redactor_masks_secrets_cut_into_pieces() -> None:
    pieces = ["The key is hun", "ter2-demo", "-secret and Bearer ", "abcdefghij",
              "klmnopqrstuvwxyz0123", " ok.\nnext ", "line"]
    redactor = StreamRedactor([SECRET])
    shown = [redactor.feed(p) for p in pieces]
    shown.append(redactor.flush())
    assert "".join(shown) == "The key is *** and Bearer *** ok.\nnext line"
    assert not any(SECRET[:4] in s or "abcdefghij" in s for s in shown)
    assert shown[0] == "The key is "  # shown at once up to what may be a secret


def test_stream_redactor_holds_a_tail_that_begins_a_secret_with_a_space() -> None:
    redactor = StreamRedactor(["open sesame now"])
    assert redactor.feed("say open ") == "say "
    assert redactor.feed("sesame now please") == "*** "
    assert redactor.flush() == "please"


def test_live_view_masks_streamed_text_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_API_KEY", SECRET)
    events = [{"node": "generator", "role": "generator", "round": 0, "text": t}
              for t in ["Bearer ", TOKEN, " and ", SECRET[:5], SECRET[5:], " end"]]
    step = {"node": "generator", "role": "generator", "round": 0}

    plain = io.StringIO()
    view = LiveView(Console(file=io.StringIO()), lambda _s: None, tty=False, stream=plain)
    with view:
        for event in events:
            view.delta(event)
        view.step(step)
    assert plain.getvalue() == "[generator r0] Bearer *** and *** end\n"

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    frames: list[str] = []
    with LiveView(console, lambda _s: None, tty=True) as live:
        for event in events:
            live.delta(event)
            frames.append("".join(live.texts.values()))
        live.step(step)
    assert frames[-1] == "Bearer *** and *** "
    assert not any(TOKEN in f or SECRET in f or SECRET[:5] in f for f in frames)
    assert TOKEN not in screen.getvalue() and SECRET not in screen.getvalue()
