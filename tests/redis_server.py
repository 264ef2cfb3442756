"""A redis-server of a test's own, to kill, freeze and restart, and a deadline wait.

Outage tests need a server they may stop or SIGSTOP without touching the shared one
on 6379; they wait for what they expect with :func:`wait_for` (a deadline), never a
fixed sleep.
"""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


class RedisServer:
    """A redis-server process of the test's own on a free port, to stop, pause and restart.

    Outage tests need a server they may kill or freeze (SIGSTOP) without touching the
    shared one; it keeps nothing on disk, so a restart comes back empty, as after a crash.
    """

    def __init__(self, directory: Path) -> None:
        import shutil

        self.exe = shutil.which("redis-server")
        if self.exe is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.directory = directory
        self.port: int = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the server on its port and wait (with a deadline) until it answers."""
        import redis

        assert self.exe is not None
        self.process = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1.0, socket_timeout=1.0)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.RedisError, OSError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on {self.port}") from None
                    time.sleep(0.02)  # polling with a deadline, not a fixed wait
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server (as a crash would) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server could not die
            self.process.kill()
            self.process.wait(30)
        self.process = None

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing answers (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def _free_port() -> int:
    """A free port outside the ephemeral range that proxies and clients get from port 0.

    A layer left behind by an earlier test keeps retrying its dead address in the
    background; were our server to reuse that port, the stale layer would connect to
    it and report an outage of its own when the server is stopped.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 30_000)
        with contextlib.suppress(OSError), socket.create_server(("127.0.0.1", port)):
            return port
    raise RuntimeError("no free port for a test redis-server in 20000-29999")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (stopped afterwards)."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def wait_for(predicate: Callable[[], T], timeout_s: float = 20.0, what: str = "it") -> T:
    """Poll ``predicate`` until it returns something true, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
