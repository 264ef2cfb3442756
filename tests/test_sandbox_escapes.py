"""Real escape attempts against the Python sandbox: each must fail and leave its target as it was.

Every row of ``ESCAPES`` is a program that prints ``ESCAPED`` if its attempt worked.
It runs twice: unconfined (a plain ``python`` in a temporary directory, which must
escape: the attempt is real) and in the sandbox (which must print ``BLOCKED`` with
the error it met, leave the test's files, /tmp and the secret untouched, and never
show the secret). ``BOMBS`` are resource attacks: each must end in bounded time and
leave no process behind. A row whose protection the running kernel cannot provide
skips with the reason (``sandbox.protections()`` says what is in force); on Linux 6.12+
as root every row runs.

The single-process memory and CPU bombs are in ``test_tools_sandbox.py``
(``test_memory_limit_raises_memory_error``, ``test_cpu_limit_stops_a_busy_loop``), as
are the wall-clock kill of a forked grandchild and the output cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from concilium.tools import sandbox
from concilium.tools.sandbox import SandboxLimits, protections, run_python, run_python_sync

SECRET_TEXT = "hunter2-" + uuid.uuid4().hex
VICTIM_TEXT = "original content\n"
SOURCE = Path(sandbox.__file__).resolve()
FS, NET, META = "landlock-fs", ("netns", "seccomp"), ("seccomp", "uid")


@dataclass
class World:
    """What the attempts aim at; ``problems()`` says what changed."""

    outside: Path  # a directory of the test's own, next to nothing the sandbox may use
    tmp_target: Path  # a file the program would create directly in /tmp
    port: int  # a local HTTP server
    unix: Path  # a pathname unix socket, listening
    abstract: str  # an abstract unix socket's name, listening

    @property
    def secret(self) -> Path:
        return self.outside / "secret.txt"

    @property
    def victim(self) -> Path:
        return self.outside / "victim.txt"

    def reset(self) -> None:
        for path in self.outside.iterdir():
            if path != self.unix:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.secret.write_text(SECRET_TEXT)
        self.victim.write_text(VICTIM_TEXT)
        self.victim.chmod(0o644)
        os.utime(self.victim, (1_000_000_000, 1_000_000_000))
        self.tmp_target.unlink(missing_ok=True)

    def problems(self) -> list[str]:
        found = []
        names = {path.name for path in self.outside.iterdir()}
        if names != {"secret.txt", "victim.txt", self.unix.name}:
            found.append(f"the test's directory now holds {sorted(names)}")
        if not self.secret.exists() or self.secret.read_text() != SECRET_TEXT:
            found.append("the secret changed")
        if not self.victim.exists():
            found.append("the victim is gone")
        else:
            info = self.victim.stat()
            if self.victim.read_text() != VICTIM_TEXT:
                found.append("the victim's content changed")
            if info.st_mode & 0o777 != 0o644 or info.st_uid != os.getuid():
                found.append("the victim's mode or owner changed")
            if info.st_mtime != 1_000_000_000:
                found.append("the victim's times changed")
            if os.listxattr(self.victim):
                found.append("the victim got extended attributes")
        if self.tmp_target.exists():
            found.append(f"{self.tmp_target} was created")
        return found

    def header(self) -> str:
        return (f"SECRET = {str(self.secret)!r}\nVICTIM = {str(self.victim)!r}\n"
                f"OUTSIDE = {str(self.outside)!r}\nTMP_TARGET = {str(self.tmp_target)!r}\n"
                f"SOURCE = {str(SOURCE)!r}\nPORT = {self.port}\nUNIX = {str(self.unix)!r}\n"
                f"ABSTRACT = {self.abstract!r}\n")


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A secret, a victim, an HTTP server, a unix and an abstract socket; all cleaned up."""
    outside = Path(tempfile.mkdtemp(prefix="concilium-escape-target-"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(outside / "listening.sock"))
    abstract = socket.socket(socket.AF_UNIX)
    name = f"\0concilium-escape-{uuid.uuid4().hex}"
    abstract.bind(name)
    for listener in (unix, abstract):
        listener.listen(64)
    target = World(outside, Path(tempfile.gettempdir(), f"concilium-escaped-{uuid.uuid4().hex}"),
                   server.server_address[1], outside / "listening.sock", name)
    try:
        yield target
    finally:
        server.shutdown()
        unix.close()
        abstract.close()
        shutil.rmtree(outside, ignore_errors=True)
        target.tmp_target.unlink(missing_ok=True)


LIBC = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\nCLONE_NEWUSER = 0x10000000\n"
        "CLONE = {'x86_64': 56, 'aarch64': 220}[os.uname().machine]\n")
HTTP_GET = ("import urllib.request\n"
            "print(urllib.request.urlopen(f'http://127.0.0.1:{PORT}/', timeout=3).read())")

# (id, attempt, protections any one of which blocks it). The attempt escapes if it runs
# to the end; an exception (the kernel's refusal) means it was blocked.
ESCAPES: list[tuple[str, str, tuple[str, ...]]] = [
    # reading outside
    ("read /etc/passwd", "print(open('/etc/passwd').read())", (FS,)),
    ("read a secret of the test", "print(open(SECRET).read())", (FS,)),
    ("read it with os.open", "fd = os.open(SECRET, os.O_RDONLY)\nprint(os.read(fd, 100))", (FS,)),
    ("read it with pathlib", "print(pathlib.Path(SECRET).read_text())", (FS,)),
    ("read it with a cat subprocess",
     "r = subprocess.run(['cat', SECRET], capture_output=True, text=True)\n"
     "assert r.returncode == 0, r.stderr.strip()\nprint(r.stdout)", (FS,)),
    ("read it from a python subprocess",
     "r = subprocess.run([sys.executable, '-c', f'print(open({SECRET!r}).read())'],\n"
     "                   capture_output=True, text=True)\n"
     "assert r.returncode == 0, r.stderr.strip().splitlines()[-1]\nprint(r.stdout)", (FS,)),
    ("read it by ../ traversal", "print(open(os.path.relpath(SECRET)).read())", (FS,)),
    ("read it through a symlink made inside",
     "os.symlink(SECRET, 'link')\nprint(open('link').read())", (FS,)),
    ("read it through a hard link made inside",
     "os.link(SECRET, 'hard')\nprint(open('hard').read())", (FS,)),
    ("read it through /proc/self/root", "print(open('/proc/self/root' + SECRET).read())", (FS,)),
    ("list the test's directory", "print(os.listdir(OUTSIDE))", (FS,)),
    ("list the parent directory", "print(os.listdir('..'))", (FS,)),
    ("read the project's source", "print(open(SOURCE).read()[:100])", (FS,)),
    ("read /proc/1/environ (or, if even root may not, its cmdline)",
     "try:\n    print(open('/proc/1/environ', 'rb').read())\nexcept PermissionError:\n"
     "    print(open('/proc/1/cmdline', 'rb').read())", (FS,)),
    ("read the parent's environment",
     "print(open(f'/proc/{os.getppid()}/environ', 'rb').read())", (FS,)),
    # writing outside
    ("create a file in the test's directory", "open(OUTSIDE + '/new.txt', 'w').write('x')",
     (FS,)),
    ("create a file in /tmp", "open(TMP_TARGET, 'w').write('x')", (FS,)),
    ("make a directory outside", "os.mkdir(OUTSIDE + '/newdir')", (FS,)),
    ("overwrite a file of the test", "open(VICTIM, 'w').write('pwned')", (FS,)),
    ("append to it", "open(VICTIM, 'a').write('pwned')", (FS,)),
    ("truncate it", "os.truncate(VICTIM, 0)", (FS,)),
    ("delete it", "os.remove(VICTIM)", (FS,)),
    ("write it through a symlink made inside",
     "os.symlink(VICTIM, 'link')\nopen('link', 'w').write('pwned')", (FS,)),
    ("write it from a shell subprocess",
     "r = subprocess.run(['sh', '-c', f'echo pwned > {VICTIM}'], capture_output=True, text=True)\n"
     "assert r.returncode == 0, r.stderr.strip()", (FS,)),
    ("rename a file out of the sandbox",
     "open('mine.txt', 'w').write('x')\nos.rename('mine.txt', OUTSIDE + '/moved.txt')", (FS,)),
    ("rename the test's file into the sandbox", "os.rename(VICTIM, 'stolen.txt')", (FS,)),
    ("chmod it", "os.chmod(VICTIM, 0o777)", META),
    ("chown it", "os.chown(VICTIM, 4242, 4242)", META),
    ("touch its times", "os.utime(VICTIM, (0, 0))", META),
    ("set an extended attribute on it", "os.setxattr(VICTIM, 'user.pwned', b'1')", META),
    # network
    ("TCP with the raw _socket module",
     "s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\ns.settimeout(3)\n"
     "s.connect(('127.0.0.1', PORT))", NET),
    ("TCP to Redis on 6379",
     "s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\ns.settimeout(3)\n"
     "s.connect(('127.0.0.1', 6379))\ns.sendall(b'PING\\r\\n')\n"
     "assert s.recv(100).startswith(b'+PONG')", NET),
    ("UDP with the raw _socket module",
     "s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)\n"
     "s.sendto(b'x', ('127.0.0.1', PORT))", NET),
    ("HTTP with urllib", HTTP_GET, NET),
    ("HTTP from a python subprocess (no socket guard there)",
     f"r = subprocess.run([sys.executable, '-c', 'PORT = ' + str(PORT) + '\\n' + {HTTP_GET!r}],\n"
     "                   capture_output=True, text=True)\n"
     "assert r.returncode == 0, r.stderr.strip().splitlines()[-1]", NET),
    ("HTTP from a curl subprocess",
     "r = subprocess.run(['curl', '-sS', '--max-time', '3', f'http://127.0.0.1:{PORT}/'],\n"
     "                   capture_output=True, text=True)\n"
     "assert r.returncode == 0, r.stderr.strip()", NET),
    ("a pathname unix socket",
     "s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)\ns.connect(UNIX)", ("seccomp",)),
    ("an abstract unix socket",
     "s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)\ns.connect(ABSTRACT)", NET),
    # other processes, identity, secrets
    ("signal the parent process", "os.kill(os.getppid(), 0)", ("landlock-scope", "uid")),
    ("leave the process group with setsid", "os.setsid()", ("seccomp",)),
    ("see the parent's environment", "assert 'sk-sandbox-secret' in repr(os.environ)", ()),
    ("import the project (its code and settings)",
     "import concilium.settings\nprint(concilium.settings.__file__)", (FS,)),
    # namespaces: a user namespace grants capabilities over code written for root only
    ("a user namespace with unshare(CLONE_NEWUSER) through ctypes",
     LIBC + "if libc.unshare(CLONE_NEWUSER) != 0:\n"
     "    raise OSError(ctypes.get_errno(), 'unshare')", ("seccomp",)),
    ("a user namespace with os.unshare (Python 3.12+)", "os.unshare(os.CLONE_NEWUSER)",
     ("seccomp",)),
    ("a user namespace from the unshare binary",
     "r = subprocess.run(['unshare', '--user', 'true'], capture_output=True, text=True)\n"
     "assert r.returncode == 0, r.stderr.strip()", ("seccomp",)),
    ("a child in a user namespace with clone(CLONE_NEWUSER)",
     LIBC + "pid = libc.syscall(CLONE, CLONE_NEWUSER | 17, 0, 0, 0, 0)  # 17: SIGCHLD\n"
     "if pid == 0:\n    os._exit(0)\nif pid < 0:\n    raise OSError(ctypes.get_errno(), 'clone')\n"
     "os.waitpid(pid, 0)", ("seccomp",)),
    ("a child in a user namespace with clone3",
     LIBC + "args = (ctypes.c_uint64 * 8)(CLONE_NEWUSER, 0, 0, 0, 17, 0, 0, 0)\n"
     "pid = libc.syscall(435, ctypes.byref(args), ctypes.sizeof(args))\n"
     "if pid == 0:\n    os._exit(0)\nif pid < 0:\n    raise OSError(ctypes.get_errno(), 'clone3')\n"
     "os.waitpid(pid, 0)", ("seccomp",)),
    ("rejoin the parent's network namespace with setns",
     LIBC + "fd = os.pidfd_open(os.getppid())\nif libc.setns(fd, 0x40000000) != 0:  # NEWNET\n"
     "    raise OSError(ctypes.get_errno(), 'setns')", ("seccomp", "uid", "no-capabilities")),
]


def _program(world: World, attempt: str) -> str:
    return (world.header() + "import _socket, os, pathlib, subprocess, sys\ntry:\n"
            + textwrap.indent(attempt, "    ")
            + "\n    print('ESCAPED')\nexcept Exception as error:\n"
            + "    print('BLOCKED', type(error).__name__, error)\n")


@pytest.mark.parametrize(("attempt", "needs"), [pytest.param(a, n, id=i) for i, a, n in ESCAPES])
def test_escape_attempt_fails(world: World, attempt: str, needs: tuple[str, ...],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    missing = [name for name in needs if name not in protections()]
    if needs and len(missing) == len(needs):
        pytest.skip(f"not enforced on this kernel/user: {', '.join(missing)}")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sandbox-secret")
    code = _program(world, attempt)
    world.reset()
    with tempfile.TemporaryDirectory() as cwd:  # the control: same program, unconfined
        control = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                                 text=True, timeout=30)
    if "ESCAPED" not in control.stdout:
        pytest.skip(f"the attempt fails here even unconfined: {control.stdout.strip()}")
    world.reset()
    result = run_python_sync(code, limits=SandboxLimits(timeout_s=20))
    print(result.stdout.strip())  # the error the attempt met; pytest -s lists them
    assert "BLOCKED" in result.stdout and "ESCAPED" not in result.stdout, result
    assert SECRET_TEXT not in result.stdout + result.stderr
    assert "sk-sandbox-secret" not in result.stdout + result.stderr
    assert world.problems() == []


def test_the_parent_never_follows_what_the_program_leaves(world: World) -> None:
    """Output is read through our descriptors; cleanup does not follow symlinks."""
    world.reset()
    code = world.header() + ("import os\nprint('mine')\nos.remove('.stdout')\n"
                             "os.symlink(SECRET, '.stdout')\nos.symlink(OUTSIDE, 'outside')\n"
                             "os.symlink('/', 'root')\n")
    result = run_python_sync(code)
    assert result.ok and result.stdout == "mine\n"
    assert world.problems() == [] and Path("/etc/passwd").exists()


async def test_the_network_namespace_alone_blocks_loopback(world: World) -> None:
    """Even an unconfined process inside the sandbox's network namespace reaches nothing."""
    nsenter = shutil.which("nsenter")
    if "netns" not in protections() or nsenter is None or os.geteuid() != 0:
        pytest.skip("needs the network namespace, and nsenter and root to enter it")
    run = asyncio.create_task(run_python("import time\ntime.sleep(60)",
                                         limits=SandboxLimits(timeout_s=60)))
    ours, pid = os.readlink("/proc/self/ns/net"), 0
    for _ in range(200):  # the child: ours, running the boot, in a namespace of its own
        await asyncio.sleep(0.05)
        pid = next((child for child in _children() if os.readlink(f"/proc/{child}/ns/net")
                    != ours), 0)
        if pid:
            break
    probe = ("import socket\nprint(socket.if_nameindex(), flush=True)\n"
             f"socket.create_connection(('127.0.0.1', {world.port}), timeout=3)")
    try:
        assert pid, "the sandbox never entered a network namespace"
        outside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        inside = subprocess.run([nsenter, f"--net=/proc/{pid}/ns/net", sys.executable, "-c",
                                 probe], capture_output=True, text=True, timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        await run
    assert outside.returncode == 0
    print(inside.stdout.strip(), inside.stderr.strip().splitlines()[-1])
    assert inside.returncode != 0 and inside.stdout.strip() == "[(1, 'lo')]"
    assert "unreachable" in inside.stderr or "refused" in inside.stderr


def _children() -> list[int]:
    """Our child processes that run the sandbox's boot."""
    found = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if entry.isdigit() and int(fields[1]) == os.getpid() and b"landlock.py" in Path(
                    f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
    return found


# Resource bombs: (id, program, limits, protections needed, what its output must show).
BOMBS: list[tuple[str, str, SandboxLimits, tuple[str, ...], str]] = [
    ("fork bomb", "while True:\n    os.fork()", SandboxLimits(timeout_s=5), (), ""),
    ("fork bomb that survives failures",
     "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
     SandboxLimits(timeout_s=3), (), ""),
    ("fork 200 sleepers, 16 allowed",
     "n = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n    except OSError:\n"
     "        continue\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
     "    n += 1\nprint('forked', n, flush=True)",
     SandboxLimits(timeout_s=5, processes=16), (), "forked"),
    ("start 200 threads, 16 allowed",
     "import threading\nn = 0\nfor _ in range(200):\n    try:\n"
     "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
     "        n += 1\n    except RuntimeError:\n        pass\nprint('started', n, flush=True)\n"
     "os._exit(0)", SandboxLimits(timeout_s=5, processes=16), (), "started"),
    ("subprocess spawning loop",
     "while True:\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])",
     SandboxLimits(timeout_s=5), (), ""),
    ("subprocesses started in new sessions",
     "for _ in range(5):\n    subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
     "time.sleep(60)", SandboxLimits(timeout_s=2), ("seccomp",), ""),
    ("8 processes of 200 MB each, 256 MB allowed in all",
     "for i in range(8):\n    if os.fork() == 0:\n        b = bytearray(200 * 2 ** 20)\n"
     "        for j in range(0, len(b), 4096):\n            b[j] = 1\n"
     "        print('full', flush=True)\n        time.sleep(3)\n        os._exit(0)\n"
     "print([os.wait()[1] for _ in range(8)], flush=True)",
     SandboxLimits(timeout_s=10, memory_mb=256), ("cgroup-memory",), ""),
]


def _in_group(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process, zombies included, in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid:
                found.append((int(entry), fields[0]))
    return found


def _process_count() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


@pytest.mark.parametrize(("code", "limits", "needs", "shows"),
                         [pytest.param(c, lim, n, s, id=i) for i, c, lim, n, s in BOMBS])
def test_bomb_is_contained_and_cleaned_up(code: str, limits: SandboxLimits,
                                          needs: tuple[str, ...], shows: str) -> None:
    bounded = {"nproc", "cgroup-pids"} & protections()
    if not bounded or any(name not in protections() for name in needs):
        pytest.skip(f"not enforced on this kernel/user: {needs or 'a task limit'}")
    before = _process_count()
    start = time.perf_counter()
    result = run_python_sync("import os, subprocess, sys, time\n"
                             "print(os.getpid(), flush=True)\n" + code, limits=limits)
    elapsed = time.perf_counter() - start
    print(result.stdout.splitlines()[1:], result.error())
    assert elapsed < limits.timeout_s + 5
    group = int(result.stdout.split()[0])  # the program's pid: its process (and session) group
    assert [state for _, state in _in_group(group) if state != "Z"] == []  # all dead at once
    if shows:  # fewer new tasks than the limit: the program's own counts too
        count = int(result.stdout.split(shows)[1].split()[0])
        assert 0 < count < limits.processes
    if "cgroup-memory" in needs:  # the kernel killed children to keep the total in bounds
        statuses = json.loads(result.stdout.splitlines()[-1])
        assert 9 in statuses and result.stdout.count("full") < 8  # 9: SIGKILL
    deadline = time.monotonic() + 15  # killed orphans are reaped by init, maybe not at once
    while (_in_group(group) or _process_count() > before + 5) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _in_group(group) == [] and _process_count() <= before + 5
    assert run_python_sync("print(6 * 7)").last_line == "42"  # and we are fine
    assert sandbox._pending == set()  # that run removed any cgroup left busy by this one


def test_legitimate_programs_still_work() -> None:
    code = textwrap.dedent("""\
        import collections, datetime, decimal, fractions, itertools, json, math, re
        import os, statistics, subprocess, sys, tempfile, threading
        os.mkdir('data')
        with open('data/numbers.json', 'w') as f:
            json.dump([1, 2, 3, 4], f)
        numbers = json.load(open('data/numbers.json'))
        os.rename('data/numbers.json', 'numbers.json')
        with tempfile.NamedTemporaryFile('w+', dir='.') as t:
            t.write('scratch'); t.flush(); t.seek(0); assert t.read() == 'scratch'
        worker = threading.Thread(target=lambda: None); worker.start(); worker.join()
        child = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True,
                               text=True)
        print(statistics.mean(numbers), fractions.Fraction(1, 3) + 1, math.comb(5, 2),
              decimal.Decimal('0.1') * 3, re.sub('a', 'b', 'aa'), child.stdout.strip(),
              datetime.date(2024, 1, 1).isoweekday(), sorted(os.listdir('.')),
              collections.Counter('aab')['a'], list(itertools.islice(itertools.count(), 3)))
        """)
    result = run_python_sync(code)
    assert result.ok, result.stderr
    assert result.stdout.split(None, 6)[:6] == ["2.5", "4/3", "10", "0.3", "bb", "42"]
    assert "'numbers.json'" in result.stdout


def test_fork_threads_and_clone_without_namespace_flags_still_work() -> None:
    """Only namespace flags are denied: clone3 says ENOSYS, so the C library uses clone."""
    code = LIBC + textwrap.dedent("""\
        import errno, subprocess, sys, threading
        args = (ctypes.c_uint64 * 8)(0, 0, 0, 0, 17, 0, 0, 0)
        pid = libc.syscall(435, ctypes.byref(args), ctypes.sizeof(args))
        if pid == 0:
            os._exit(0)
        clone3 = 'ENOSYS' if pid < 0 and ctypes.get_errno() == errno.ENOSYS else 'ran'
        if pid > 0:
            os.waitpid(pid, 0)
        pid = libc.syscall(CLONE, 17, 0, 0, 0, 0)  # a plain fork through clone
        if pid == 0:
            os._exit(3)
        plain = os.waitpid(pid, 0)[1] >> 8
        files = libc.unshare(0x400)  # CLONE_FILES: no namespace, allowed
        pid = os.fork()
        if pid == 0:
            os._exit(5)
        forked = os.waitpid(pid, 0)[1] >> 8
        seen = []
        workers = [threading.Thread(target=seen.append, args=(i,)) for i in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        child = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True,
                               text=True).stdout.strip()
        print(clone3, plain, files, forked, sorted(seen), child)
        """)
    result = run_python_sync(code)
    assert result.ok, result.stderr
    expected = "3 0 5 [0, 1, 2, 3] 42"
    assert result.last_line in (f"ENOSYS {expected}", f"ran {expected}"), result.stdout
    if "seccomp" in result.protections:
        assert result.last_line.startswith("ENOSYS")


def test_protections_are_reported() -> None:
    applied = run_python_sync("pass").protections
    assert applied == protections() and {"rlimits", "socket-guard"} <= applied
    release = tuple(int(part) for part in os.uname().release.split(".")[:2])
    if sys.platform == "linux" and release >= (6, 12) and os.geteuid() == 0:
        # What such a kernel gives root whatever the setup; plus, on this machine and CI,
        # a pids cgroup (cgroup v1) and, as Python lives under /root, which only root may
        # enter, uid 0 without capabilities instead of a uid of its own.
        assert {"landlock-fs", "landlock-net", "landlock-scope", "seccomp", "netns"} <= applied
        assert {"uid", "no-capabilities"} & applied


# The sandbox module run by another interpreter and user: how it degrades.
PROBE = """\
import importlib.util, json, sys
sys.dont_write_bytecode = True
def load(name):
    spec = importlib.util.spec_from_file_location(name, {tools!r} + '/' + name + '.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
if {deny!r}:  # pretend the kernel has no Landlock, namespaces or prctl (so no seccomp)
    load('landlock').deny_syscalls(0xC000003E, {{444: 38, 272: 1, 157: 22}})
sandbox = load('sandbox')
results = [sandbox.run_python_sync(code, limits=sandbox.SandboxLimits(timeout_s=5,
                                                                      processes=16))
           for code in json.loads(sys.argv[1])]
print(json.dumps([[r.stdout, r.stderr, sorted(r.protections)] for r in results]))
"""
SYSTEM_PYTHON = "/usr/bin/python3"


def _probe(directory: Path, codes: list[str], user: int | None, deny: bool) -> list[list]:
    """Run ``codes`` in the sandbox from the system Python, as ``user``; their results."""
    if not os.access(SYSTEM_PYTHON, os.X_OK) or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import sys; assert sys.version_info >= (3, 11)"]).returncode:
        pytest.skip(f"needs {SYSTEM_PYTHON} 3.11+ (readable by any user)")
    script = directory / "probe.py"
    script.write_text(PROBE.format(tools=str(SOURCE.parent), deny=deny))
    script.chmod(0o644)
    out = subprocess.run([SYSTEM_PYTHON, "-I", str(script), json.dumps(codes)], user=user,
                         group=user, extra_groups=[] if user is not None else None,
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory anyone may write, holding a file anyone may write: only Landlock guards."""
    path = Path(tempfile.mkdtemp(prefix="concilium-escape-shared-"))
    path.chmod(0o777)
    (path / "secret.txt").write_text(SECRET_TEXT)
    (path / "secret.txt").chmod(0o666)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the denied numbers are x86_64's")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to choose the user")
@pytest.mark.parametrize(("user", "deny", "identity"), [
    pytest.param(None, False, {"uid", "nproc"}, id="root, world-readable python: own uid"),
    pytest.param(65534, False, {"nproc"}, id="not root"),
    pytest.param(65534, True, {"nproc"}, id="not root, no landlock, namespaces, seccomp"),
])
def test_other_users_and_older_kernels(shared: Path, user: int | None, deny: bool,
                                       identity: set[str]) -> None:
    """It never crashes, runs with what it has, and reports exactly that."""
    secret = str(shared / "secret.txt")
    read, write, network, bomb, legit = _probe(shared, [
        f"print(open({secret!r}).read())",
        f"open({secret!r}, 'w').write('pwned')",
        "import _socket\n_socket.socket().connect(('127.0.0.1', 6379))",
        "import os\nprint(os.getpid(), flush=True)\nwhile True:\n    os.fork()",
        "print(6 * 7)"], user, deny)
    applied = set(legit[2])
    assert legit[0] == "42\n" and identity <= applied
    if deny:
        assert applied == {"rlimits", "nproc", "socket-guard"}
        assert SECRET_TEXT in read[0]  # the report is true: nothing kept it from reading
    else:
        assert {"landlock-fs", "seccomp"} & protections() <= applied
    if "landlock-fs" in applied:
        assert "PermissionError" in read[1] + write[1] and SECRET_TEXT not in read[0]
        assert (shared / "secret.txt").read_text() == SECRET_TEXT
    if {"seccomp", "netns"} & applied:
        assert "Error" in network[1]
    pgid = int(bomb[0].split()[0])
    deadline = time.monotonic() + 15
    while _in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _in_group(pgid) == []  # the fork bomb ended, and nothing of it is left
