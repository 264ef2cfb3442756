"""Run a command while busy loops hold every core: do the tests pass on a loaded machine?

A test that guesses how long something takes passes on an idle laptop and fails on a
CI machine whose cores are busy. This runs the command (``--times`` times in a row,
stopping at the first failure) while one busy loop per core (or ``--loops``) spins,
and always stops the loops afterwards::

    python tests/busy.py -- pytest -q
    python tests/busy.py --times 3 -- pytest -q -x
    python tests/busy.py --times 10 -- pytest -q tests/test_durable.py -k ctrl_c

The exit code is the command's (the first failing run's).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

SPIN = "while True:\n    pass\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [--loops N] [--times K] -- COMMAND ...")
    parser.add_argument("--loops", type=int, default=os.cpu_count() or 2,
                        help="busy loops to run (default: one per core)")
    parser.add_argument("--times", type=int, default=1,
                        help="run the command this many times in a row (stop at a failure)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    loops = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.loops)]
    code = 0
    try:
        for run in range(1, args.times + 1):
            start = time.monotonic()
            code = subprocess.call(command)
            print(f"busy.py: run {run}/{args.times} with {args.loops} busy loop(s): exit {code} "
                  f"in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
            if code != 0:
                break
    except KeyboardInterrupt:
        code = 130
    finally:
        for loop in loops:  # only the loops we started, by their own process ids
            loop.send_signal(signal.SIGKILL)
        for loop in loops:
            loop.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
