"""Run untrusted Python (a model's program, a code answer with its tests) in a subprocess.

A model's code is data, not ours: it runs in a child interpreter with a wall-clock
timeout, CPU-time, memory and file-size limits (``resource.setrlimit`` in
``preexec_fn``), in a fresh temporary directory that is removed afterwards, with
an environment that carries none of our variables (no API keys), and without
network: a new network namespace where the kernel allows one, and in any case a
guard that makes every socket call fail. Output goes to files capped by the
file-size limit, so a program that prints forever cannot fill our memory.

This is containment for honest mistakes and small models, not a security boundary
against a determined attacker (use a container or a VM for that).

Example:
    >>> result = await run_python("print(74 * 18 - 32)")
    >>> result.ok, result.last_line
    (True, '1300')
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_LIMITS", "SandboxLimits", "SandboxResult", "python_tool", "run_python",
           "run_python_sync"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_libc: Any = None
with contextlib.suppress(OSError, TypeError):  # resolved here: a forked child must not import
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# Runs first in the child: disable sockets, then execute main.py as __main__.
_BOOT = """\
import socket as _s, sys as _y
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")
class _NoSocket(_s.socket):
    def __init__(self, *args, **kwargs):
        _no_network()
for _name in ("create_connection", "getaddrinfo", "gethostbyname", "socketpair", "fromfd"):
    setattr(_s, _name, _no_network)
_s.socket = _NoSocket
del _s, _NoSocket, _name
_y.argv = ["main.py"]
_code = compile(open("main.py", encoding="utf-8").read(), "main.py", "exec")
exec(_code, {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__})
"""


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed run may use."""

    timeout_s: float = 10.0
    """Wall-clock limit; the whole process group is killed when it passes."""
    cpu_s: int = 10
    """CPU seconds (RLIMIT_CPU); the kernel stops the process with SIGXCPU."""
    memory_mb: int = 512
    """Address space (RLIMIT_AS); allocations beyond it raise MemoryError."""
    output_bytes: int = 1_000_000
    """Largest file the program may write, stdout and stderr included (RLIMIT_FSIZE)."""
    network_namespace: bool = True
    """Try a new (empty) network namespace; the socket guard applies regardless."""


DEFAULT_LIMITS = SandboxLimits()


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed program did."""

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    duration_ms: float

    @property
    def ok(self) -> bool:
        """The program ran to completion and exited with status 0."""
        return self.returncode == 0 and not self.timed_out

    @property
    def last_line(self) -> str | None:
        """The last non-empty line printed: where a program-aided answer is read from."""
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else None

    def error(self, lines: int = 6) -> str:
        """A short description of why the program failed, for a model to act on."""
        if self.timed_out:
            return "the program did not finish within the time limit"
        if self.returncode is not None and self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            hint = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (output limit)",
                    "SIGKILL": " (killed)"}.get(name, "")
            return f"the program was stopped by {name}{hint}"
        tail = [line for line in self.stderr.strip().splitlines() if line.strip()][-lines:]
        return "\n".join(tail) or f"exit status {self.returncode}"


def _limit(limits: SandboxLimits) -> Any:
    """The ``preexec_fn``: runs in the forked child, before Python starts."""
    memory = limits.memory_mb * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # As root a network namespace alone suffices; otherwise a user namespace is
        # needed too. Where neither is allowed, the socket guard still applies.
        if limits.network_namespace and _libc is not None and _libc.unshare(_CLONE_NEWNET):
            _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET)

    return apply


def run_python_sync(code: str, *, limits: SandboxLimits = DEFAULT_LIMITS,
                    stdin: str = "") -> SandboxResult:
    """Run ``code`` as ``main.py`` in a fresh temporary directory; block until it ends."""
    with tempfile.TemporaryDirectory(prefix="concilium-sandbox-") as tmp:
        work = Path(tmp)
        (work / "main.py").write_text(code, encoding="utf-8")
        env = {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8",
               "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1"}
        start = time.perf_counter()
        timed_out = False
        with open(work / ".stdout", "wb") as out, open(work / ".stderr", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT],
                cwd=tmp, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                preexec_fn=_limit(limits), start_new_session=True,
            )
            try:
                process.communicate(stdin.encode("utf-8"), timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        duration = (time.perf_counter() - start) * 1000.0
        cap = limits.output_bytes
        return SandboxResult(
            stdout=(work / ".stdout").read_bytes()[:cap].decode("utf-8", "replace"),
            stderr=(work / ".stderr").read_bytes()[:cap].decode("utf-8", "replace"),
            returncode=None if timed_out else process.returncode,
            timed_out=timed_out,
            duration_ms=duration,
        )


async def run_python(code: str, *, limits: SandboxLimits = DEFAULT_LIMITS,
                     stdin: str = "") -> SandboxResult:
    """Run ``code`` in the sandbox without blocking the event loop.

    Args:
        code: the program; it runs as ``__main__`` from ``main.py`` in its own directory.
        limits: time, CPU, memory and output limits.
        stdin: text fed to the program's standard input.

    Returns:
        Captured output, exit status and whether the wall-clock limit was hit. A
        failing program is a result, never an exception.
    """
    return await asyncio.to_thread(run_python_sync, code, limits=limits, stdin=stdin)


def python_tool() -> Any:
    """The sandbox as a LangChain tool (imported lazily: langchain-core is not cheap)."""
    from langchain_core.tools import StructuredTool

    def python(code: str) -> str:
        """Run a short Python program (no network, 10 s limit) and return what it prints."""
        result = run_python_sync(code)
        return result.stdout if result.ok else f"error: {result.error()}\n{result.stdout}"

    return StructuredTool.from_function(python, name="python")
