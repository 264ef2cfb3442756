"""Run a test body inside a fresh network namespace with only loopback up.

Ray binds to the machine's outward address on its own; inside a namespace whose
only interface is ``lo`` it can bind nothing but 127.0.0.1, so a test's Ray
cluster (and its model server, its Redis) stays on loopback. PostgreSQL is
reached through its unix socket, which the namespace does not hide.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

__all__ = ["PG_SOCKET_URL", "run_in_netns"]

PG_SOCKET_URL = "postgresql+psycopg://postgres@/test?host=/var/run/postgresql"
REPO = Path(__file__).resolve().parent.parent


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def run_in_netns(args: list[str], *, env: dict[str, str] | None = None,
                 timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` inside a new namespace; the namespace and its processes go afterwards."""
    name = f"cnc-{uuid.uuid4().hex[:10]}"
    try:
        made = _ip("netns", "add", name)
    except FileNotFoundError:
        pytest.skip("ip (iproute2) is not installed: Ray tests need a network namespace")
    if made.returncode != 0:
        pytest.skip(f"ip netns is not permitted here ({made.stderr.strip()}): Ray tests run "
                    "Ray in a loopback-only network namespace")
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        full = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": "",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
        return subprocess.run(["ip", "netns", "exec", name, sys.executable, *args], env=full,
                              capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    finally:
        pids = _ip("netns", "pids", name).stdout.split()
        for pid in pids:  # what the body left running (Ray's daemons, servers) is ours
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", name)
