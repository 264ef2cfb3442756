"""Teams for tests on the real local model, with no wall-clock limits of their own.

A team file's ``limits.timeout_s`` and ``retry.timeout_s`` guard a user's terminal; they
are times, and the tests that run the 135M model are about answers. With both cores
busy (``tests/busy.py``) one 192-token generation took longer than the example's 300 s,
so a test that kept the file's limits failed for the machine's speed, not the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from concilium.teams import load_spec

HOUR = 3600.0


def patient(source: Path | dict[str, Any]) -> dict[str, Any]:
    """``source`` (a team file or its dict) with the run's and each call's timeout at an hour."""
    data = (load_spec(source).model_dump(mode="json", exclude_none=True)
            if isinstance(source, Path) else dict(source))
    data["limits"] = {**data.get("limits", {}), "timeout_s": HOUR}
    data["retry"] = {**data.get("retry", {}), "timeout_s": HOUR}
    return data
