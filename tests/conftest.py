"""Test-wide guards: no real model requests, no shared state on disk.

Every test runs with model calls limited to in-process providers (``scripted``,
``local``, ``faulty``), a fresh ``CONCILIUM_HOME`` under ``tmp_path`` and a cleared
settings cache, so a test can neither reach the network nor see another's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from concilium.agents.llm import allow_only
from concilium.settings import get_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "teams"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CONCILIUM_HOME", str(tmp_path / ".concilium"))
    for name in ("CONCILIUM_MODEL", "CONCILIUM_DATABASE_URL", "CONCILIUM_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    with allow_only("scripted", "local", "faulty"):
        yield
    get_settings.cache_clear()


@pytest.fixture
def examples() -> Path:
    """The directory of the example team files."""
    return EXAMPLES
