"""Start a Python process a test will Ctrl-C so that it takes SIGINT, whatever it inherits.

A shell starts a background job (``cmd &`` without job control: ``nohup`` runners, some
CI agents) with SIGINT ignored, an ignored signal stays ignored across ``exec``, and
Python then never installs its ``KeyboardInterrupt`` handler: the test's SIGINT does
nothing and the test waits out its deadline (found running the suite from
``(nohup python tests/busy.py ... &)``). A user who starts ``concilium`` that way asked
for exactly that, so the CLI leaves it alone; the tests reset it in the child.
"""

from __future__ import annotations

import sys

__all__ = ["takes_ctrl_c"]

_TRAMPOLINE = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def takes_ctrl_c(command: list[str]) -> list[str]:
    """``command`` (``[sys.executable, ...]``) run with SIGINT at its default disposition.

    Not ``preexec_fn``: it is unsafe in a process with threads, which a test has.
    """
    if not command or command[0] != sys.executable:
        raise ValueError(f"not a command of this Python: {command[:1]}")
    return [sys.executable, "-c", _TRAMPOLINE, *command[1:]]
