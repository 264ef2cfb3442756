"""Run untrusted Python (a model's program, a code answer with its tests) in a subprocess.

A model's code is data, not ours. It runs as ``main.py`` in a child interpreter, in
a fresh temporary directory removed afterwards, with an environment that carries
none of our variables (no API keys), in its own session; when it ends or the
wall-clock limit passes, its whole process group (and its cgroups) are killed.
Output goes to files capped by the file-size limit and is read back through our own
descriptors, so a program that prints forever cannot fill our memory and one that
swaps the files for symlinks cannot make us read anything else.

Before the program runs, the child confines itself with kernel mechanisms
(``concilium.tools.landlock`` has the details), each irrevocable and inherited by
everything it starts:

- limits: CPU seconds, address space, file size (rlimits); tasks and total memory
  for the whole tree (a per-run pids and memory cgroup where we may create one, and
  RLIMIT_NPROC wherever the program does not run as uid 0);
- filesystem (Landlock): read and execute only the interpreter's trees and system
  libraries, write only its temporary directory; nothing else is readable;
- network: an empty network namespace, seccomp making ``socket()`` fail, Landlock
  denying TCP, and a guard in the ``socket`` module for a readable error;
- identity: as root, a per-run unprivileged uid, or uid 0 without capabilities where
  the interpreter is not readable by other users; no signals to or ptrace of
  processes outside the sandbox (Landlock scopes); no new namespaces (seccomp denies
  ``unshare``/``clone`` with ``CLONE_NEW*`` and ``setns``), so no user namespace to
  gain capabilities in, the usual first step of a kernel exploit.

Each mechanism is used where the kernel and our privileges allow it and skipped
otherwise; ``SandboxResult.protections`` (and ``protections()``) name what was in
force, so nothing is claimed that was not applied. With all of them (Linux 6.12+, as
root or with unprivileged user namespaces) the program cannot read or write outside
its directory, reach the network, signal our processes, or outgrow its limits by
forking. Still open: file metadata (``stat`` of a path it knows, which says whether a
file exists), pids of other processes, and disk space (files of up to the output
limit, for as long as it runs). Without a memory cgroup (not root) total memory is
bounded only by processes x memory_mb. Inside its directory it cannot ``chmod``
either (so ``shutil.copy`` fails; ``shutil.copyfile`` works). Not a VM: a kernel bug
is still a way out.

Example:
    >>> result = await run_python("print(74 * 18 - 32)")
    >>> result.ok, result.last_line
    (True, '1300')
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_LIMITS", "SandboxLimits", "SandboxResult", "protections", "python_tool",
           "run_python", "run_python_sync"]

_BOOT = Path(__file__).with_name("landlock.py")
"""Run by the child interpreter: it confines itself, then runs ``main.py``."""
_CGROUP_FILES = {"pids": ("pids.max", "pids.max"),
                 "memory": ("memory.limit_in_bytes", "memory.max")}  # (cgroup v1, v2)
_runs = itertools.count()
_pending: set[Path] = set()
"""Our cgroups that dying tasks still held when their run ended."""


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
    """Try a new (empty) network namespace; seccomp and the socket guard apply regardless."""
    processes: int = 64
    """Processes and threads the program may have at once (pids cgroup, RLIMIT_NPROC)."""


DEFAULT_LIMITS = SandboxLimits()


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed program did."""

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    duration_ms: float
    protections: frozenset[str] = frozenset()
    """What confined this run (see ``protections()``); empty if the child never got there."""

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


@functools.cache
def _cgroup_parents() -> dict[str, Path]:
    """For pids and memory: the cgroup directory to make a per-run cgroup in (found once
    per process: our cgroup and the mounts do not change under us).

    cgroup v1: ours in that controller's hierarchy. v2: ours, or its parent, whichever
    hands the controller down (ours usually holds processes, so cannot).
    """
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            own[name] = path  # "" names the unified (v2) hierarchy
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        root, mount = fields.split()[3:5]
        fstype, _, options = rest.split()[:3]
        v2 = fstype == "cgroup2"
        for name in _CGROUP_FILES if v2 or fstype == "cgroup" else ():
            ours = own.get("" if v2 else name)
            if (name in found or ours is None or not ours.startswith(root)
                    or not (v2 or name in options.split(","))):
                continue
            where = Path(mount, ours[len(root):].lstrip("/"))
            for candidate in (where, where.parent) if v2 else (where,):
                with contextlib.suppress(OSError):
                    if not v2 or name in (candidate / "cgroup.subtree_control").read_text().split():
                        found[name] = candidate
                        break
    return found


def _make_cgroups(limits: SandboxLimits) -> dict[str, list[str]]:
    """Per-run cgroups limiting tasks and total memory, where we may create them (root).

    Returns ``{directory: [controllers limited there]}``; the child joins each itself.
    """
    values = {"pids": limits.processes, "memory": limits.memory_mb * 1024 * 1024}
    made: dict[str, list[str]] = {}
    with contextlib.suppress(OSError, ValueError):
        name = f"concilium-sandbox-{os.getpid()}-{next(_runs)}"
        for path in list(_pending):
            if _remove_cgroup(path, attempts=1):
                _pending.discard(path)
        for controller, parent in _cgroup_parents().items():
            for stale in parent.glob("concilium-sandbox-*"):  # of a parent that died mid-run
                if not Path("/proc", stale.name.split("-")[2]).exists():
                    _remove_cgroup(stale, attempts=1)
            path = parent / name
            with contextlib.suppress(OSError):
                path.mkdir(exist_ok=True)
                made.setdefault(str(path), [])
                v1, v2 = _CGROUP_FILES[controller]
                limit = path / (v2 if (path / "cgroup.controllers").exists() else v1)
                limit.write_text(str(values[controller]))
                made[str(path)].append(controller)
    for directory, controllers in list(made.items()):
        if not controllers:  # its limit could not be set: of no use
            _remove_cgroup(Path(directory))
            del made[directory]
    return made


def _remove_cgroup(path: Path, attempts: int = 50) -> bool:
    """Kill every task left in a cgroup and remove it; False while dying tasks still hold it.

    Killed orphans wait for init to reap them, which some inits do only now and then;
    ``_pending`` keeps such cgroups for the next run to remove.
    """
    for attempt in range(attempts):
        try:
            pids = (path / "cgroup.procs").read_text().split()
        except OSError:
            return True  # gone
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
        with contextlib.suppress(OSError):
            path.rmdir()
            return True
        if attempt + 1 < attempts:
            time.sleep(0.01)
    return False


def run_python_sync(code: str, *, limits: SandboxLimits = DEFAULT_LIMITS,
                    stdin: str = "") -> SandboxResult:
    """Run ``code`` as ``main.py`` in a fresh temporary directory; block until it ends."""
    with tempfile.TemporaryDirectory(prefix="concilium-sandbox-",
                                     ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        (work / "main.py").write_text(code, encoding="utf-8")
        env = {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8",
               "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1"}
        cgroups = _make_cgroups(limits)
        report, report_w = os.pipe()
        config = {"cpu": limits.cpu_s, "memory": limits.memory_mb * 1024 * 1024,
                  "fsize": limits.output_bytes, "processes": limits.processes,
                  "netns": limits.network_namespace, "cgroups": cgroups, "report_fd": report_w}
        start = time.perf_counter()
        timed_out = False
        with open(work / ".stdout", "w+b") as out, open(work / ".stderr", "w+b") as err:
            process = None
            try:
                try:
                    process = subprocess.Popen(
                        [sys.executable, "-I", str(_BOOT), json.dumps(config)],
                        cwd=tmp, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                        start_new_session=True, pass_fds=(report_w,),
                    )
                finally:
                    os.close(report_w)
                try:
                    process.communicate(stdin.encode("utf-8"), timeout=limits.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
            finally:
                # Whatever happened, nothing it started survives: its process group (which
                # seccomp keeps it from leaving) and everything in its cgroups.
                if process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                _pending.update(path for path in map(Path, cgroups) if not _remove_cgroup(path))
                applied = _read_report(report)
            duration = (time.perf_counter() - start) * 1000.0
            stdout, stderr = (_read_back(file, limits.output_bytes) for file in (out, err))
        return SandboxResult(stdout=stdout, stderr=stderr,
                             returncode=None if timed_out else process.returncode,
                             timed_out=timed_out, duration_ms=duration,
                             protections=applied)


def _read_report(fd: int) -> frozenset[str]:
    """What the child said it applied (it writes before the program runs), then close."""
    data = b""
    try:
        os.set_blocking(fd, False)
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:  # the write end is still open somewhere: take what came
        pass
    finally:
        os.close(fd)
    try:
        return frozenset(json.loads(data))
    except ValueError:
        return frozenset()


def _read_back(file: Any, cap: int) -> str:
    """Output from the descriptor we opened: the program may rename or replace the file."""
    file.seek(0)
    return str(file.read(cap).decode("utf-8", "replace"))


@functools.cache
def protections() -> frozenset[str]:
    """What confines a sandboxed run here, found by running an empty program once.

    Names: ``rlimits``, ``nproc``, ``cgroup-pids``, ``cgroup-memory``, ``netns``,
    ``uid``, ``no-capabilities``, ``landlock-fs``, ``landlock-net``, ``landlock-scope``,
    ``seccomp``, ``socket-guard`` (``concilium.tools.landlock`` says what each does).
    """
    return run_python_sync("pass", limits=SandboxLimits(timeout_s=30)).protections


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
