"""``concilium run``'s live view: each role's text as it is generated, then its step line.

On a terminal, a ``rich`` Live area shows one panel per call in flight (a debate's
debaters side by side in time), each with the last lines of its text; when the call's
ledger step lands, its panel goes and the step line is printed above. Elsewhere (a
pipe, a log, CI) the text is printed as it comes, with a ``[node r1]`` header each
time the speaker changes; a speaker keeps the floor until its line ends, so parallel
calls interleave by whole lines, never mid-word. Everything goes to stderr: stdout
keeps only the answer.

The text is redacted as it streams (:class:`concilium.secrets.StreamRedactor`), as
every other output is: a key in a model's reply never reaches the terminal, even when
the tokenizer cut it into several pieces.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from concilium.secrets import StreamRedactor

__all__ = ["LiveView"]

SHOWN_LINES = 6
"""Lines of a call's text a panel shows (the last ones)."""


class LiveView:
    """Receives a run's deltas and steps (its ``on_delta`` and ``on_step``) and shows them.

    Use it as a context manager around the run.
    """

    def __init__(
        self,
        console: Console,
        print_step: Callable[[Any], None],
        *,
        tty: bool | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.console = console
        self.print_step = print_step
        self.tty = console.is_terminal if tty is None else tty
        self.stream = stream or sys.stderr
        self.texts: dict[str, str] = {}
        self.titles: dict[str, str] = {}
        self.speaking: str | None = None
        self.last: str | None = None
        self.column = 0
        self.waiting: dict[str, str] = {}
        self.rounds: dict[str, Any] = {}
        self.redactors: dict[str, StreamRedactor] = {}
        self.live: Live | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> LiveView:
        if self.tty:
            self.live = Live(
                self._render(),
                console=self.console,
                transient=True,
                refresh_per_second=12,
                auto_refresh=True,
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None
        else:
            for node, redactor in self.redactors.items():
                self.waiting[node] = self.waiting.get(node, "") + redactor.flush()
            self.redactors.clear()
            for node in list(self.waiting):
                self._finish(node)

    # ------------------------------------------------------------------ callbacks

    def delta(self, event: dict[str, Any]) -> None:
        node = str(event.get("node", "?"))
        with self._lock:
            if event.get("restart") or node not in self.redactors:  # a new reply
                self.redactors[node] = StreamRedactor()
            text = self.redactors[node].feed(str(event.get("text", "")))
            if event.get("restart"):
                self.texts[node] = ""
            self.texts[node] = self.texts.get(node, "") + text
            self.titles[node] = f"{node} · {event.get('role', '')} · r{event.get('round', 0)}"
            if self.live is not None:
                self.live.update(self._render())
                return
            if event.get("restart"):
                text = " [retry] " + text
            self.rounds[node] = event.get("round", 0)
            self.waiting[node] = self.waiting.get(node, "") + text
            self._pump()

    def step(self, step: Any) -> None:
        node = str(step.get("node", "?"))
        with self._lock:
            redactor = self.redactors.pop(node, None)
            if redactor is not None and self.live is None:  # the reply's held-back end
                self.waiting[node] = self.waiting.get(node, "") + redactor.flush()
            self.texts.pop(node, None)
            self.titles.pop(node, None)
            if self.live is not None:
                self.live.update(self._render())
            else:
                self._finish(node)
            self.print_step(step)
            if self.live is None:
                self._pump()

    # ------------------------------------------------------------------ plain output

    def _write(self, node: str, text: str) -> None:
        if self.last != node:
            lead = "\n" if self.column else ""
            self.stream.write(f"{lead}[{node} r{self.rounds.get(node, 0)}] ")
            self.last, self.column = node, 1
        self.stream.write(text)
        if text:
            self.column = 0 if text.endswith("\n") else self.column + len(text)

    def _pump(self) -> None:
        """Give the floor to one speaker at a time, a whole line at a time."""
        while True:
            if self.speaking is None:
                self.speaking = next((n for n, t in self.waiting.items() if t), None)
                if self.speaking is None:
                    break
            node = self.speaking
            text = self.waiting.get(node, "")
            end = text.find("\n")
            if end < 0:
                if text:
                    self._write(node, text)
                    self.waiting[node] = ""
                break
            self._write(node, text[: end + 1])
            self.waiting[node] = text[end + 1 :]
            self.speaking = None  # a line ended: another speaker may go on
        self.stream.flush()

    def _finish(self, node: str) -> None:
        """``node``'s call ended: its remaining text, then a fresh line."""
        text = self.waiting.pop(node, "")
        if text:
            self._write(node, text)
        if self.last == node and self.column:
            self.stream.write("\n")
            self.column = 0
        if self.speaking == node:
            self.speaking = None
        self.stream.flush()

    # ------------------------------------------------------------------ rendering

    def _render(self) -> Group:
        panels = []
        for node, text in self.texts.items():
            lines = text.rstrip("\n").splitlines()[-SHOWN_LINES:]
            panels.append(
                Panel(
                    Text("\n".join(lines)),
                    title=self.titles.get(node, node),
                    title_align="left",
                    border_style="dim",
                )
            )
        return Group(*panels)
