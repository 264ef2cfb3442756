"""The sandboxed child's side: confine this process, then run the model's ``main.py``.

``concilium.tools.sandbox`` starts ``python -I landlock.py CONFIG`` in the program's
fresh temporary directory. Running here, inside the new interpreter and before any
untrusted code, makes the setup single-threaded and free of the ``preexec_fn``
hazards (a fork of a threaded parent). It imports the standard library only: the
child must not import concilium. Each step is kernel-enforced, irrevocable, inherited
by every process the program starts, and skipped (not reported) where the kernel or
our privileges do not allow it:

1. ``rlimits``: CPU seconds, address space, file size, no core files; when not root,
   RLIMIT_NPROC too (``nproc``), before the user namespace below so it still counts.
2. ``cgroup-pids`` / ``cgroup-memory``: join the per-run cgroups the parent made, so
   the whole process tree shares one task budget and one memory budget.
3. ``netns``: a new, empty network namespace (inside a new user namespace when not
   root): there is no interface to reach anything through. A new IPC namespace too.
4. As root: a per-run unprivileged uid with no groups (``uid``, which also makes
   RLIMIT_NPROC count: it never applies to uid 0) when the interpreter's files are
   readable by others; otherwise uid 0 with every capability dropped
   (``no-capabilities``), so the limits cannot be raised again.
5. ``landlock-fs``: Landlock (Linux 5.13+) allows reading and executing only the
   interpreter's trees, /usr, /lib*, /bin and a few files the C library opens, and
   writing only inside the temporary directory (and /dev/null). ``landlock-net``
   (ABI 4+): no TCP bind or connect. ``landlock-scope`` (ABI 6+): no signals to, and
   no abstract unix sockets of, processes outside the sandbox.
6. ``seccomp``: ``socket`` (any family, unix included), ``io_uring_setup``, ``setsid``,
   ``setpgid``, the keyring calls and every call changing a file's mode, owner, times
   or extended attributes fail with EPERM: Landlock does not cover metadata, and a
   program running as uid 0 or as our own user owns files outside its directory. The
   process group cannot be left, so killing it kills everything the program started.
   No new namespaces either: ``setns``, and ``unshare`` or ``clone`` with
   any ``CLONE_NEW*`` flag, fail with EPERM (a user namespace is the usual first step
   of a kernel exploit: it hands the program capabilities over code meant for root);
   ``clone3``, whose flags sit in memory a filter cannot read, fails with ENOSYS, so
   the C library falls back to ``clone`` and fork and threads still work.

What was applied is written, as JSON, to a pipe the program never sees.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import errno
import json
import os
import resource
import stat
import sys
import sysconfig
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the child starts faster without typing (and pathlib)
    from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Landlock (include/uapi/linux/landlock.h); its syscall numbers are the same on every arch.
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_MAKE_CHAR, _MAKE_BLOCK, _TRUNCATE, _IOCTL_DEV = 1 << 6, 1 << 11, 1 << 14, 1 << 15
_FILE_ONLY = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # for non-directories
_READ = _EXECUTE | _READ_FILE | _READ_DIR

_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 24, 38, 22
_CLONE_NEWUSER, _CLONE_NEWIPC, _CLONE_NEWNET = 0x10000000, 0x08000000, 0x40000000
_SANDBOX_UID_BASE = 0x70000000
"""Per-run uid = base + pid: above the ranges distributions, containers and systemd use."""

# Denied by seccomp: sockets (any family), io_uring (it can open sockets), leaving the
# process group, kernel keyrings, and changing any file's mode, owner, times or xattrs
# (Landlock does not cover metadata; a uid-0 or same-user program owns files outside).
# Per arch: AUDIT_ARCH_* and the numbers; the rest are the same on every arch.
_SECCOMP_ARCH = {
    "x86_64": (0xC000003E, (41, 112, 109, 248, 249, 250, 90, 91, 92, 93, 94, 268, 260, 132, 235,
                            261, 280, 188, 189, 190, 197, 198, 199)),
    "aarch64": (0xC00000B7, (198, 157, 154, 217, 218, 219, 52, 53, 54, 55, 88, 5, 6, 7, 14, 15,
                             16)),
}
_SECCOMP_COMMON = (425, 452, 463, 466)  # io_uring_setup, fchmodat2, setxattrat, removexattrat

# Namespaces: (setns, unshare, clone) per arch. unshare and clone are denied only with a
# CLONE_NEW* flag in their first argument; clone3 (435 everywhere) with ENOSYS.
_NAMESPACE_CALLS = {"x86_64": (308, 272, 56), "aarch64": (268, 97, 220)}
_CLONE3 = 435
_CLONE_NEW_ANY = (0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | _CLONE_NEWIPC
                  | _CLONE_NEWUSER | 0x20000000 | _CLONE_NEWNET)
"""NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (all in the low 32
bits; for ``clone`` the low byte is the exit signal, which never sets 0x80)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _call(function: Any, *args: Any) -> int:
    """Call a libc function, integers as C longs; raise ``OSError`` when it fails."""
    result = function(*(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def _prctl(option: int, *args: Any) -> int:
    return _call(_libc.prctl, option, *args, *[0] * (4 - len(args)))


def _syscall(number: int, *args: Any) -> int:
    return _call(_libc.syscall, number, *args)


def read_roots() -> list[str]:
    """What the interpreter, the standard library and installed packages need to read."""
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)),
             *(sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib",
                                                         "platlib")),
             "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
             "/etc/ld.so.cache", "/etc/localtime", "/dev/zero", "/dev/urandom", "/dev/random"}
    real = {os.path.realpath(path) for path in paths if os.path.exists(path)}
    return sorted(real - {"/"})  # a prefix of / (rare, odd) must not open everything


def landlock(read: Iterable[str], write: Iterable[str]) -> list[str]:
    """Deny all filesystem access but reading ``read`` and using ``write``; return what applied.

    The rules hold for this process and every descendant, across ``exec``. Rights a
    kernel's ABI does not know are left out, so older kernels enforce what they can.
    """
    abi = _syscall(_CREATE_RULESET, None, 0, 1)
    fs = (1 << 13) - 1  # ABI 1: execute .. make_sym
    fs |= (1 << 13 if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    fs |= _IOCTL_DEV if abi >= 5 else 0
    net = 0b11 if abi >= 4 else 0  # bind and connect TCP, with no rule allowing any port
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets and signals
    attr = _RulesetAttr(fs, net, scoped)
    size = 24 if scoped else 16 if net else 8
    ruleset = _syscall(_CREATE_RULESET, ctypes.byref(attr), size, 0)
    try:
        write_rights = fs & ~(_MAKE_CHAR | _MAKE_BLOCK)
        for paths, rights in ((read, _READ), (write, write_rights)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = rights if stat.S_ISDIR(os.fstat(fd).st_mode) else rights & _FILE_ONLY
                    rule = _PathBeneath(allowed & fs, fd)
                    _syscall(_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0)
                finally:
                    os.close(fd)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        _syscall(_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    return ["landlock-fs"] + ["landlock-net"] * bool(net) + ["landlock-scope"] * bool(scoped)


def seccomp() -> None:
    """Deny the system calls in ``_SECCOMP_ARCH`` and the namespace calls (see there why).

    Raises KeyError on an architecture we have no syscall numbers for.
    """
    machine = os.uname().machine
    arch, numbers = _SECCOMP_ARCH[machine]
    setns, unshare, clone = _NAMESPACE_CALLS[machine]
    errors = {number: errno.EPERM for number in (*numbers, *_SECCOMP_COMMON, setns)}
    errors[_CLONE3] = errno.ENOSYS
    deny_syscalls(arch, errors, flags={unshare: _CLONE_NEW_ANY, clone: _CLONE_NEW_ANY})


def deny_syscalls(arch: int, errors: dict[int, int], flags: dict[int, int] | None = None) -> None:
    """Install a seccomp filter: each syscall in ``errors`` fails with its errno.

    A syscall in ``flags`` fails with EPERM when its first argument has any of the
    given bits set, and is allowed otherwise. Calls made through another ABI (i386
    ``int 0x80``, x32) all fail with EPERM.
    """
    fail = 0x00050000  # SECCOMP_RET_ERRNO | errno
    program = [(0x20, 0, 0, 4),  # A = seccomp_data.arch
               (0x15, 1, 0, arch),
               (0x06, 0, 0, fail | errno.EPERM),
               (0x20, 0, 0, 0),  # A = seccomp_data.nr
               (0x35, 0, 1, 0x40000000),  # x32 numbers
               (0x06, 0, 0, fail | errno.EPERM)]
    for number, code in errors.items():
        program += [(0x15, 0, 1, number), (0x06, 0, 0, fail | code)]
    allow = (0x06, 0, 0, 0x7FFF0000)  # SECCOMP_RET_ALLOW
    for number, mask in (flags or {}).items():  # last: they load an argument over the number
        program += [(0x15, 0, 4, number),
                    (0x20, 0, 0, 16),  # A = low 32 bits of seccomp_data.args[0]
                    (0x45, 0, 1, mask),  # A & mask?
                    (0x06, 0, 0, fail | errno.EPERM),
                    allow]
    program.append(allow)
    filters = (_SockFilter * len(program))(*(_SockFilter(*op) for op in program))
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _prctl(_PR_SET_SECCOMP, 2, ctypes.byref(_SockFprog(len(program), filters)))  # MODE_FILTER


def drop_capabilities() -> None:
    """Stay uid 0 but hold no capability, now or after any ``exec`` (empty bounding set)."""
    for cap in range(64):
        try:
            _prctl(_PR_CAPBSET_DROP, cap)
        except OSError:
            break  # EINVAL: past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    _call(_libc.capset, header, (ctypes.c_uint32 * 6)())


def world_readable(paths: Iterable[str]) -> bool:
    """Whether any user may read ``paths`` (and list them) and search every ancestor."""
    for path in map(os.path.abspath, paths):
        try:
            mode = os.stat(path).st_mode
            wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
            while mode & wanted == wanted and path != "/":
                path, wanted = os.path.dirname(path), stat.S_IXOTH
                mode = os.stat(path).st_mode
            if mode & wanted != wanted:
                return False
        except OSError:
            return False
    return True


def _tasks_of(uid: int) -> int:
    """Tasks (processes and threads) of ``uid`` now: what RLIMIT_NPROC counts."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass
    return count


_UNAVAILABLE = (OSError, AttributeError, KeyError)
"""How a missing mechanism shows: an errno, no such libc function or flag, an unknown arch."""


def confine(config: dict[str, Any]) -> list[str]:
    """Apply every protection this kernel and our privileges allow; return their names."""
    memory, cpu, fsize = config["memory"], config["cpu"], config["fsize"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    applied = ["rlimits"]
    root = os.getuid() == 0
    if not root:
        with contextlib.suppress(*_UNAVAILABLE):
            # Relative to what this user runs already (all of it counts), and set before
            # the user namespace: the kernel keeps this limit for the tasks made inside.
            nproc = _tasks_of(os.getuid()) - 1 + config["processes"]
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            applied.append("nproc")
    for path, controllers in config["cgroups"].items():
        with contextlib.suppress(*_UNAVAILABLE), open(os.path.join(path, "cgroup.procs"),
                                                      "w") as procs:
            procs.write(str(os.getpid()))
            procs.flush()
            applied += [f"cgroup-{name}" for name in controllers]
    # IPC too where possible: no SysV objects or message queues of other processes.
    tries: tuple[int, ...] = (_CLONE_NEWNET | _CLONE_NEWIPC, _CLONE_NEWNET)
    tries += tuple(_CLONE_NEWUSER | flags for flags in tries)  # unprivileged: in a userns
    with contextlib.suppress(*_UNAVAILABLE):
        if config["netns"] and any(_libc.unshare(flags) == 0 for flags in tries):
            applied.append("netns")
    read = read_roots()
    if root:
        try:
            if not world_readable([*read, os.path.dirname(os.getcwd())]):
                raise PermissionError("the interpreter is not readable by other users")
            uid = _SANDBOX_UID_BASE + os.getpid()
            os.chown(".", uid, uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (config["processes"],) * 2)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            applied += ["uid", "nproc"]
        except _UNAVAILABLE:
            with contextlib.suppress(*_UNAVAILABLE):
                drop_capabilities()
                applied.append("no-capabilities")
    with contextlib.suppress(*_UNAVAILABLE):
        applied += landlock(read, [os.getcwd(), "/dev/null"])
    with contextlib.suppress(*_UNAVAILABLE):
        seccomp()
        applied.append("seccomp")
    return applied


# Replaces the socket module's entry points, for a clear message where a program tries.
def _guard_sockets() -> None:
    import socket

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access is disabled in the sandbox")

    class NoSocket(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            no_network()

    for name in ("create_connection", "getaddrinfo", "gethostbyname", "socketpair", "fromfd"):
        setattr(socket, name, no_network)
    socket.socket = NoSocket  # type: ignore[misc]


def main() -> None:
    """Confine, report on the pipe, close it, then run ``main.py`` as ``__main__``."""
    config = json.loads(sys.argv[1])
    with open("main.py", encoding="utf-8") as file:  # while it is surely ours to read
        source = file.read()
    applied = confine(config)
    with os.fdopen(config["report_fd"], "w") as report:
        json.dump([*applied, "socket-guard"], report)
    _guard_sockets()
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__="main.py", __builtins__=builtins)
    sys.modules["__main__"] = module
    sys.argv = ["main.py"]
    try:
        exec(compile(source, "main.py", "exec"), module.__dict__)
    except SystemExit:
        raise
    except BaseException as error:  # report it from main.py on: these frames are not its
        import traceback

        traceback.print_exception(error.with_traceback(error.__traceback__.tb_next
                                                        if error.__traceback__ else None))
        sys.exit(1)


if __name__ == "__main__":
    main()
