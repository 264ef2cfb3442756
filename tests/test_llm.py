"""The model door: usage accounting, retries of transient faults only, fallbacks, the ban."""

from __future__ import annotations

import time

import pytest

from concilium.agents.llm import RetryPolicy, chat, litellm_module
from concilium.agents.providers import scripted
from concilium.errors import ConciliumError, ModelError, ScriptExhausted

FAST = RetryPolicy(attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02, timeout_s=5)
MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


def _rate_limited(call: scripted.ScriptCall) -> str:
    lm = litellm_module()
    raise lm.exceptions.RateLimitError("slow down", llm_provider="scripted", model="x")


async def test_reply_usage_and_role_metadata_reach_the_provider() -> None:
    with scripted.use("door", scripted.Script({"critic": ["Answer: 4"]})) as script:
        result = await chat(MESSAGES, model="scripted/door", metadata={"role": "critic"})
    assert result.text == "Answer: 4"
    assert result.model == "scripted/door"
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.attempts == 1 and not result.fallback_used
    assert script.calls[0].role == "critic"


async def test_transient_faults_are_retried_then_succeed() -> None:
    script = scripted.Script({"user": [_rate_limited, _rate_limited, "Answer: 4"]})
    with scripted.use("flaky", script):
        result = await chat(MESSAGES, model="scripted/flaky", retry=FAST)
    assert result.text == "Answer: 4"
    assert result.attempts == 3
    assert len(result.errors) == 2 and "RateLimitError" in result.errors[0]


async def test_fallback_model_answers_when_the_first_keeps_failing() -> None:
    down = scripted.Script({"user": [_rate_limited] * 3})
    backup = scripted.Script({"user": ["Answer: 4"]})
    with scripted.use("down", down), scripted.use("backup", backup):
        result = await chat(MESSAGES, model="scripted/down", fallbacks=["scripted/backup"],
                            retry=FAST)
    assert result.fallback_used and result.model == "scripted/backup"
    assert down.count() == 3 and backup.count() == 1


async def test_bugs_are_not_retried() -> None:
    def broken(call: scripted.ScriptCall) -> str:
        raise ValueError("bug in the provider")

    script = scripted.Script({"user": [broken, "never reached"]})
    with scripted.use("buggy", script), pytest.raises(ModelError, match="ValueError"):
        await chat(MESSAGES, model="scripted/buggy", retry=FAST)
    assert script.count() == 1


async def test_each_try_has_a_timeout() -> None:
    slow = scripted.Script(default="Answer: 4", latency_s=60.0)
    policy = RetryPolicy(attempts=2, initial_backoff_s=0.0, timeout_s=0.1)
    start = time.perf_counter()
    with scripted.use("slow", slow), pytest.raises(ModelError, match="Timeout"):
        await chat(MESSAGES, model="scripted/slow", retry=policy)
    assert time.perf_counter() - start < 30  # not 2 x 60 s: each try was cut off


async def test_an_exhausted_script_raises_its_own_error() -> None:
    with scripted.use("short", scripted.Script({"user": ["one"]})):
        await chat(MESSAGES, model="scripted/short")
        with pytest.raises(ScriptExhausted, match="no reply left"):
            await chat(MESSAGES, model="scripted/short")


async def test_real_providers_are_refused_in_tests() -> None:
    with pytest.raises(ConciliumError, match="not allowed"):
        await chat(MESSAGES, model="openai/gpt-4o-mini")


async def test_missing_script_names_the_fix() -> None:
    with pytest.raises(ConciliumError, match="CONCILIUM_SCRIPTS_DIR"):
        await chat(MESSAGES, model="scripted/nobody-registered-this")


async def test_scripts_load_from_yaml_files(tmp_path, monkeypatch) -> None:
    (tmp_path / "fromfile.yaml").write_text(
        "replies:\n  user: ['Answer: 1']\nrules:\n  - match: 'two'\n    reply: 'Answer: 2'\n"
    )
    monkeypatch.setenv("CONCILIUM_SCRIPTS_DIR", str(tmp_path))
    from concilium.settings import get_settings

    get_settings.cache_clear()
    first = await chat(MESSAGES, model="scripted/fromfile")
    second = await chat([{"role": "user", "content": "say two"}], model="scripted/fromfile")
    assert (first.text, second.text) == ("Answer: 1", "Answer: 2")


def test_a_run_on_our_own_providers_never_imports_litellm(tmp_path) -> None:
    """Importing litellm is most of a cold start (issue #17): scripted/ and local/ calls,
    and OpenAI-compatible servers, are made without it."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys\n"
        "from concilium import load_team\n"
        "from concilium.agents.providers import scripted\n"
        "scripted.register('cold', scripted.Script(default='Answer: 5'))\n"
        f"team = load_team({str(root / 'examples' / 'teams' / 'single.yaml')!r}, "
        "model='scripted/cold')\n"
        "result = team.run('What is 2+3?')\n"
        "assert result.answer == '5', result\n"
        "print('litellm' in sys.modules)\n"
    )
    assert not _imports_litellm(code, tmp_path)


def test_an_eval_and_a_batch_of_our_own_models_never_import_litellm(tmp_path) -> None:
    """The runners warm litellm before their first item only when a call will go through
    it (issue #17): a scripted team's evaluation and batch pay neither its ~4 s nor its
    ~150 MB."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    team = str(root / "examples" / "teams" / "gvr.yaml")
    code = (
        "import asyncio, json, sys\n"
        "from pathlib import Path\n"
        "from concilium import load_team\n"
        "from concilium.agents.providers import scripted\n"
        "from concilium.eval.datasets import load_dataset\n"
        "from concilium.eval.runner import EvalOptions, Evaluation\n"
        "from concilium.scale import Batch\n"
        "scripted.register('cold', scripted.Script(default='Answer: 5'))\n"
        f"team = load_team({team!r}, model='scripted/cold')\n"
        "evaluation = Evaluation([team], load_dataset('arith:3:0'), Path('eval'),\n"
        "                        EvalOptions(memory='read'))\n"
        "asyncio.run(evaluation.run())\n"
        "assert len(evaluation.records()[team.name]) == 3\n"
        "Path('tasks.jsonl').write_text(json.dumps({'id': 'a', 'task': '2+3?'}) + '\\n')\n"
        "batch = Batch(team, Path('tasks.jsonl'), Path('out.jsonl'))\n"
        "asyncio.run(batch.run())\n"
        "assert 'a' in batch.done, batch.done\n"
        "print('litellm' in sys.modules)\n"
    )
    assert not _imports_litellm(code, tmp_path)


def test_litellm_is_warmed_only_for_a_team_with_a_call_through_it() -> None:
    """The route is :func:`direct.route`'s: our providers and an OpenAI-compatible server
    are called directly; a hosted model, a fallback to one, or native tools need litellm."""
    from concilium.agents.llm import through_litellm, warm_litellm
    from concilium.spec import TeamSpec

    def team(**role: object) -> TeamSpec:
        return TeamSpec.model_validate({"name": "t", "strategy": "single",
                                        "model": "scripted/x", "roles": {"generator": role}})

    assert not through_litellm("scripted/x")
    assert not through_litellm("local/smollm2")
    assert not through_litellm("openai/qwen", "http://127.0.0.1:9/v1")
    assert through_litellm("anthropic/claude-3-5-haiku-latest")
    assert not warm_litellm([team(), team(model="openai/qwen", api_base="http://127.0.0.1:9/v1")])
    assert warm_litellm([team(), team(fallbacks=["anthropic/claude-3-5-haiku-latest"])])
    assert warm_litellm([team(model="gemini/gemini-2.0-flash")])


def _imports_litellm(code: str, tmp_path) -> bool:
    """Run ``code`` (which ends by printing ``'litellm' in sys.modules``) in a new process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "CONCILIUM_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-1] == "True"
