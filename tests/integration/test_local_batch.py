"""Overlapping calls to the real local model are decoded in one batch, and a sample's
output does not depend on what else is in the batch.

Each sequence has its own KV stream and its own seeded sampler chain, so a seed gives
the same text alone, in a batch of five, and through ``Llama.create_chat_completion``
(llama-cpp-python's own, unbatched decoding).
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest

from concilium.agents.llm import RetryPolicy, chat
from concilium.agents.providers import local
from concilium.errors import ConfigError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed: pip install -e '.[local]'",
    ),
]

PATIENT = RetryPolicy(attempts=1, timeout_s=1800)  # the test machine's cores are shared
STORY = [{"role": "user", "content": "Write a story about a dragon who learns to count."}]
QUESTIONS = ["What is 17 * 24 + 3?", "Name three colours.", "Why is the sky blue?",
             "Write a haiku about rain.", "What is the capital of France?"]


@pytest.fixture(autouse=True)
def _batching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local.BATCH_ENV, "1")


async def _text(messages: list[dict[str, str]], **params: Any) -> str:
    reply = await chat(messages, model="local/smollm2", max_tokens=32, retry=PATIENT, **params)
    return reply.text


def _decoder() -> Any:
    return local.on_model_thread("smollm2", local.decoder, "smollm2").result()


def _forget() -> None:
    local.on_model_thread("smollm2", _decoder().forget).result()


def _unbatched(messages: list[dict[str, str]], **params: Any) -> str:
    llama, _ = local.load_model("smollm2")
    llama.reset()  # no prefix kept from the previous call: the prompt evaluated whole
    out = llama.create_chat_completion(messages=messages, max_tokens=32,
                                       repeat_penalty=local.REPEAT_PENALTY, **params)
    return str(out["choices"][0]["message"]["content"])


async def test_seeded_samples_in_a_batch_equal_each_sample_alone() -> None:
    batch = await asyncio.to_thread(_decoder)
    alone = [await _text(STORY, temperature=0.7, seed=seed) for seed in range(5)]
    await asyncio.to_thread(_forget)
    batch.widest = 0
    together = await asyncio.gather(*(_text(STORY, temperature=0.7, seed=seed)
                                      for seed in range(5)))
    assert batch.widest >= 2, "the five calls were not decoded together"
    assert list(together) == alone
    assert len(set(alone)) > 1, "distinct seeds should give distinct samples"
    again = await asyncio.gather(*(_text(STORY, temperature=0.7, seed=seed)
                                   for seed in range(5)))
    assert list(again) == alone


async def test_greedy_answers_to_different_prompts_in_a_batch_equal_each_alone() -> None:
    batch = await asyncio.to_thread(_decoder)
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    alone = []
    for p in prompts:
        await asyncio.to_thread(_forget)
        alone.append(await _text(p))
    await asyncio.to_thread(_forget)
    batch.widest = 0
    together = await asyncio.gather(*(_text(p) for p in prompts))
    assert batch.widest >= 2
    assert list(together) == alone


async def test_batched_decoding_equals_llama_cpp_python_unbatched() -> None:
    """The same seed gives the text ``Llama.create_chat_completion`` gives."""
    await asyncio.to_thread(_forget)
    together = await asyncio.gather(*(_text(STORY, temperature=0.7, seed=seed)
                                      for seed in (3, 4)),
                                    _text([{"role": "user", "content": QUESTIONS[0]}]))
    reference = [
        local.on_model_thread("smollm2", lambda s=seed: _unbatched(
            STORY, temperature=0.7, seed=s)).result() for seed in (3, 4)]
    reference.append(local.on_model_thread("smollm2", lambda: _unbatched(
        [{"role": "user", "content": QUESTIONS[0]}], temperature=0.0)).result())
    assert list(together) == reference


async def test_stop_strings_end_a_batched_sample_as_they_end_an_unbatched_one() -> None:
    params = {"temperature": 0.7, "seed": 7, "stop": [","]}
    await asyncio.to_thread(_forget)
    together = await asyncio.gather(_text(STORY, **params), _text(STORY, temperature=0.7,
                                                                  seed=8))
    reference = local.on_model_thread("smollm2", lambda: _unbatched(STORY, **params)).result()
    assert together[0] == reference and "," not in together[0]


async def test_a_prompt_longer_than_the_context_is_a_config_error() -> None:
    long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(ConfigError, match="prompt too long for the local model"):
        await chat(long, model="local/smollm2", max_tokens=8)
