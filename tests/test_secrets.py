"""A planted API key never reaches the ledger, error messages or CLI output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from concilium import load_team
from concilium.agents.llm import chat
from concilium.agents.providers import scripted
from concilium.cli.app import app
from concilium.errors import ModelError
from concilium.secrets import redact

KEY = "sk-planted0123456789abcdefXYZ"
TOKEN = "tok_planted_987654321"


@pytest.fixture(autouse=True)
def _planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", TOKEN)
    monkeypatch.setenv("CONCILIUM_REDIS_URL", "redis://user:redispass99@127.0.0.1:1/0")


def _leaks(text: str) -> list[str]:
    return [s for s in (KEY, TOKEN, "redispass99") if s in text]


def test_redact_masks_known_and_key_shaped_values() -> None:
    text = f"auth {KEY} {TOKEN} redis://user:redispass99@h Bearer abcdefghijklmnopqrstuvwx"
    assert _leaks(redact(text)) == []
    assert "abcdefghijklmnopqrstuvwx" not in redact(text)


async def test_a_key_echoed_by_the_model_or_in_the_task_stays_out_of_the_ledger() -> None:
    team = load_team({"name": "s", "strategy": "single", "roles": {"generator": {}}},
                     model="scripted/echo")
    with scripted.use("echo", scripted.Script(default=f"my key is {KEY}. Answer: 4")):
        result = await team.arun(f"Use the token {TOKEN} and tell me 2+2")
    assert _leaks(result.model_dump_json()) == []
    assert result.answer == "4"


async def test_error_messages_do_not_carry_keys() -> None:
    def failing(call: scripted.ScriptCall) -> str:
        raise ConnectionError(f"refused for api_key={KEY}")

    with scripted.use("leaky", scripted.Script(default=failing)), \
            pytest.raises(ModelError) as caught:
        from concilium.agents.llm import RetryPolicy

        await chat([{"role": "user", "content": "hi"}], model="scripted/leaky",
                   retry=RetryPolicy(attempts=1))
    assert _leaks(str(caught.value)) == [] and "refused" in str(caught.value)


def test_cli_json_output_has_no_keys(examples: Path) -> None:
    with scripted.use("echo", scripted.Script(default=f"{KEY} Answer: 4")):
        out = CliRunner().invoke(app, ["run", str(examples / "single.yaml"), f"2+2? {TOKEN}",
                                       "--model", "scripted/echo", "--json"])
    assert out.exit_code == 0, out.output
    assert _leaks(out.output) == [] and json.loads(out.stdout)["answer"] == "4"


async def test_no_file_on_disk_holds_a_key_ledger_journal_or_checkpoints(tmp_path: Path) -> None:
    """A key in the task is masked before any model sees it; one a model echoes is masked
    in the ledger, the call journal and the LangGraph checkpoints alike."""
    from concilium.memory.ledger import flush
    from concilium.settings import get_settings

    team = load_team({"name": "s", "strategy": "gvr", "limits": {"max_rounds": 1},
                      "roles": {"generator": {}, "verifier": {"check": "llm"}, "refiner": {}}},
                     model="scripted/echo2")
    script = scripted.Script(rules=[scripted.Rule("VERDICT: incorrect", role="verifier")],
                             default=f"my key is {KEY}. Answer: 4")
    with scripted.use("echo2", script):
        result = await team.arun(f"Use the token {TOKEN} and tell me 2+2", durable=True)
    assert result.status == "ok" and result.answer == "4"
    assert not [c for c in script.calls if TOKEN in c.text]  # no model saw the task's key
    assert "Use the token *** and tell me" in script.calls[0].text
    flush()
    home = get_settings().home
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "checkpoints.db" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not [s for s in (KEY, TOKEN) if s.encode() in data], path


def test_redact_without_any_key_shape_anchor_is_the_pattern_s_answer() -> None:
    """Text with none of ``sk-``, ``Bearer ``, ``api_key=``, ``://`` skips the key-shape
    pattern (issue #17: its lookbehinds cost ~0.1 ms per kilobyte); every shape is still
    masked where an anchor is, and text without one comes back the same object."""
    from concilium.secrets import _SHAPES, MASK

    plain = "You are a careful solver. What is 17 * 24 + 3? Answer: 411 " * 40
    assert redact(plain, []) is plain
    shaped = [f"key sk-{'a' * 20} end", f"Authorization: Bearer {'b' * 20}",
              f"GET /x?api_key={'c' * 10}&y=1", "postgresql://u:pw12345@db/x",
              "sk-short and Bearer short", "see https://example.org/path"]
    for text in shaped:
        assert redact(text, []) == _SHAPES.sub(MASK, text)
    assert "a" * 20 not in redact(shaped[0], [])
