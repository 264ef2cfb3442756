"""The real default model (SmolLM2-135M via llama.cpp, in-process) runs a real team."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from patience import patient

from concilium import load_team

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed: pip install -e '.[local]'",
    ),
]


async def test_gvr_example_runs_on_the_local_model(examples: Path) -> None:
    team = load_team(patient(examples / "gvr.yaml"))
    result = await team.arun("What is 17 * 24 + 3?", reference="411")
    assert result.status == "ok"
    llm_steps = [s for s in result.steps if s["kind"] == "llm"]
    assert llm_steps and all(s["model"] == "local/smollm2" for s in llm_steps)
    assert all(s["prompt_tokens"] > 20 and s["completion_tokens"] > 0 for s in llm_steps)
    assert result.usage.total_tokens == sum(
        s["prompt_tokens"] + s["completion_tokens"] for s in llm_steps
    )
    verdicts = [s for s in result.steps if s["role"] == "verifier"]
    assert verdicts and verdicts[0]["model"] == "calculator"
    # The loop ends for a stated reason: the calculator accepted or the rounds ran out.
    assert result.stop_reason in {"verifier accepted", "round limit (3) reached"}
    assert len(verdicts) == 1 + result.rounds
