"""Every example team runs end to end (scripted model) and uses the default model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from concilium import load_team
from concilium.agents.providers import scripted

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "teams"
NEW = ["self_consistency", "pal_self_consistency", "self_refine", "debate", "debate_live",
       "debate_adversarial", "debate_heterogeneous", "reflexion", "custom_graph"]


def everyone_agrees() -> scripted.Script:
    def generator(call: scripted.ScriptCall) -> str:
        return "Expression: 6 * 7" if "Expression:" in call.text else "6 * 7 = 42.\nAnswer: 42"

    return scripted.Script(rules=[
        scripted.Rule(generator, role="generator"),
        scripted.Rule("NO ISSUES", role="critic"),
        scripted.Rule("VERDICT: correct", role="verifier"),
        scripted.Rule("WINNER: affirmative", role="moderator"),
        scripted.Rule("Reflection: multiply first.", role="reflector"),
    ], default="6 * 7 = 42.\nAnswer: 42")


@pytest.mark.parametrize("name", NEW)
async def test_example_runs(name: str) -> None:
    team = load_team(EXAMPLES / f"{name}.yaml", model="scripted/examples")
    with scripted.use("examples", everyone_agrees()):
        result = await team.arun("What is 6 * 7?", reference="42")
    assert result.status == "ok" and result.answer == "42", result.stop_reason


@pytest.mark.parametrize("name", NEW)
def test_examples_run_on_the_default_model(name: str) -> None:
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))
    models = {r.get("model") for r in data["roles"].values()} | {data.get("model")}
    if name == "debate_heterogeneous":
        assert models - {None} == {"local/smollm2", "ollama/llama3.1"}
    else:
        assert models == {None}
