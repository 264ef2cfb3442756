"""Decode several requests to one llama.cpp model in one batch.

Self-consistency samples and the debaters of a round reach the local model at the
same moment. Decoded one after another they cost N times one call; decoded together,
one ``llama_decode`` per step carries a token of every sequence, and a 135M model on
a CPU spends about as long on five rows as on one.

How it stays faithful to one call at a time (``Llama.create_chat_completion``):

- every sequence has its own KV stream (``kv_unified=False``): its attention sees
  exactly the cells, in the same places, that it would see alone;
- every request has its own sampler chain (the same chain ``Llama`` builds: repeat
  penalty, then greedy, or top-k/typical/top-p/min-p/temperature and a distribution
  seeded by the request), so what else is in the batch never moves its random stream;
- a prompt is evaluated whole, from position 0, in a ``llama_decode`` of its own
  (chunks of 512 tokens, as ``Llama.eval`` does): how llama.cpp rounds depends on how
  many tokens a call carries, so a prompt's logits must not depend on what else
  arrived with it (a prompt split where another call's prefix happened to end
  changed a greedy answer, 508 -> 509, in our measurements);
- a prompt already evaluated in some stream (a sibling sample, or the previous call)
  is not evaluated again: that stream is copied and the saved logits of the prompt's
  last token are sampled, which is exactly what a fresh evaluation computes;
- stop strings, end-of-generation tokens, the UTF-8 split rule and the token limit
  follow ``Llama._create_completion``.

Everything here runs on the model's one thread (see ``local.on_model_thread``);
:meth:`BatchDecoder.submit` is the only method other threads call.
"""

from __future__ import annotations

import ctypes
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BatchDecoder", "Request"]

LAST_N_PENALTY = 64  # Llama's default ``last_n_tokens_size``
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


@dataclass
class Request:
    """One completion: prompt tokens and how to sample, with the future to answer."""

    prompt: list[int]
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    repeat_penalty: float = 1.0
    stop: list[bytes] = field(default_factory=list)
    future: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass
class _Slot:
    """One KV stream (sequence id) and what it holds."""

    seq: int
    cells: list[int] = field(default_factory=list)  # tokens whose KV is in the stream
    logits: np.ndarray | None = None  # logits after the prompt ``cells[:logits_at]``
    logits_at: int = 0
    busy: bool = False
    prompt: list[int] = field(default_factory=list)  # of the run it serves
    used: int = 0  # when it was last given a run (least recently used goes first)


@dataclass
class _Run:
    """A request being decoded in a slot."""

    request: Request
    slot: _Slot
    sampler: Any
    todo: list[int]  # tokens to evaluate next (prompt rest, or the last sampled token)
    made: list[int] = field(default_factory=list)
    text: bytes = b""
    utf8_wait: int = 0


class BatchDecoder:
    """Continuous batching over one llama.cpp context with ``slots`` KV streams.

    Args:
        llama: a loaded ``llama_cpp.Llama``; its model, vocabulary and chat template
            are used, not its context.
        slots: sequences decoded together at most (``n_seq_max``).
        context_tokens: tokens each sequence may hold (prompt and completion).
        schedule: called with :meth:`drain` when work arrives and no drain is running;
            it must run ``drain`` on the model's thread.
    """

    def __init__(self, llama: Any, *, slots: int, context_tokens: int,
                 schedule: Callable[[Callable[[], None]], Any]) -> None:
        import llama_cpp

        self._api = llama_cpp
        self.llama = llama
        self.context_tokens = context_tokens
        self.batch_tokens = 512
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = context_tokens * slots
        params.n_seq_max = slots
        params.kv_unified = False
        params.n_batch = params.n_ubatch = self.batch_tokens
        ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a batched context")
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._batch = llama_cpp.llama_batch_init(self.batch_tokens, 0, 1)
        self._vocab = llama._model.vocab
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._ids = np.arange(self._n_vocab, dtype=np.int32)
        self._slots = [_Slot(seq=i) for i in range(slots)]
        self._runs: list[_Run] = []
        self._pending: list[Request] = []
        self._lock = threading.Lock()
        self._draining = False
        self._clock = 0
        self._schedule = schedule
        self.steps = 0  # decode calls made (for tests and the benchmark)
        self.widest = 0  # most sequences decoded in one step

    # -- any thread ---------------------------------------------------------------

    def submit(self, request: Request) -> Future[dict[str, Any]]:
        """Queue a request; it joins the running batch at its next step."""
        with self._lock:
            self._pending.append(request)
            start = not self._draining
            self._draining = True
        if start:
            self._schedule(self.drain)
        return request.future

    # -- the model's thread ---------------------------------------------------------

    def drain(self) -> None:
        """Decode until no request is running or waiting."""
        try:
            while True:
                self._admit()
                if not self._runs:
                    with self._lock:
                        if not self._pending:
                            self._draining = False
                            return
                    continue
                self._step()
        except BaseException as error:
            for run in list(self._runs):
                self._finish(run, error=error)
            for slot in self._slots:  # what the streams hold is no longer known
                self._api.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
                slot.cells, slot.logits, slot.logits_at = [], None, 0
            with self._lock:
                pending, self._pending = self._pending, []
                self._draining = False
            for request in pending:
                _answer(request.future, error=error)
            raise

    def forget(self) -> None:
        """Drop every saved prompt (call on the model's thread, with nothing running).

        Tests and the benchmark use it to measure cold prompts.
        """
        for slot in self._slots:
            if not slot.busy:
                self._api.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
                slot.cells, slot.logits, slot.logits_at = [], None, 0

    def close(self) -> None:
        """Free the context and the batch (call on the model's thread)."""
        if self._ctx is not None:
            self._api.llama_batch_free(self._batch)
            self._api.llama_free(self._ctx)
            self._ctx = None

    def _admit(self) -> None:
        with self._lock:
            waiting, self._pending = self._pending, []
        later: list[Request] = []
        for index, request in enumerate(waiting):
            if request.future.cancelled():
                continue
            if len(request.prompt) >= self.context_tokens:
                _answer(request.future, error=ValueError(
                    f"Requested tokens ({len(request.prompt)}) exceed context window of "
                    f"{self.context_tokens}"))
                continue
            if any(s.busy and s.logits is None and s.prompt == request.prompt
                   for s in self._slots):
                later.append(request)  # a sibling is evaluating this prompt: copy it then
                continue
            slot = self._place(request)
            if slot is None:  # every stream is busy: wait for the next step
                later.extend(waiting[index:])
                break
            self._start(request, slot)
        if later:
            with self._lock:
                self._pending[:0] = later

    def _place(self, request: Request) -> _Slot | None:
        """The stream for ``request``: one already holding its prompt, else the best free one."""
        prompt = request.prompt
        free = [slot for slot in self._slots if not slot.busy]
        if not free:
            return None
        for slot in free:
            if slot.logits is not None and slot.cells[:slot.logits_at] == prompt \
                    and slot.logits_at == len(prompt):
                return slot
        for donor in self._slots:
            if donor.busy and donor.logits is not None and donor.logits_at == len(prompt) \
                    and donor.cells[:len(prompt)] == prompt:
                target = free[0]
                self._api.llama_memory_seq_rm(self._memory, target.seq, -1, -1)
                # Streams are separate: the whole stream is copied, then trimmed below.
                self._api.llama_memory_seq_cp(self._memory, donor.seq, target.seq, -1, -1)
                target.cells = list(donor.cells)
                target.logits, target.logits_at = donor.logits, donor.logits_at
                return target
        return min(free, key=lambda slot: slot.used)

    def _start(self, request: Request, slot: _Slot) -> None:
        prompt = request.prompt
        reuse = slot.logits is not None and slot.logits_at == len(prompt) \
            and slot.cells[:len(prompt)] == prompt
        keep = len(prompt) if reuse else 0
        if not reuse:
            slot.logits, slot.logits_at = None, 0
        self._api.llama_memory_seq_rm(self._memory, slot.seq, keep, -1)
        slot.cells = slot.cells[:keep]
        slot.busy, slot.prompt = True, list(prompt)
        self._clock += 1
        slot.used = self._clock
        run = _Run(request=request, slot=slot, sampler=self._sampler(request),
                   todo=[] if reuse else prompt[keep:])
        self._runs.append(run)
        if reuse:
            assert slot.logits is not None
            self._next(run, slot.logits)

    def _sampler(self, request: Request) -> Any:
        """The chain ``Llama._init_sampler`` builds, seeded by the request."""
        from llama_cpp._internals import LlamaSampler

        sampler = LlamaSampler()
        sampler.add_penalties(penalty_last_n=LAST_N_PENALTY, penalty_repeat=request.repeat_penalty,
                              penalty_freq=0.0, penalty_present=0.0)
        if request.temperature == 0.0:
            sampler.add_greedy()
        else:
            seed = request.seed if request.seed is not None else random.randint(0, 2**32 - 1)
            sampler.add_top_k(40)
            sampler.add_typical(1.0, 1)
            sampler.add_top_p(0.95, 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(request.temperature)
            sampler.add_dist(seed & 0xFFFFFFFF)
        return sampler

    def _step(self) -> None:
        """A ``llama_decode`` of one token of every generating run, then one prompt chunk."""
        for run in [r for r in self._runs if r.request.future.cancelled()]:
            self._finish(run)
        generating = [r for r in self._runs if r.made or r.slot.logits is not None]
        if generating:
            self._decode([(run, 1) for run in generating])
        prefilling = [r for r in self._runs if r not in generating]
        if prefilling:
            self._decode([(prefilling[0], self.batch_tokens)])

    def _decode(self, parts: list[tuple[_Run, int]]) -> None:
        """Evaluate up to ``take`` pending tokens of each run; sample the runs that are done."""
        api, batch = self._api, self._batch
        rows: list[tuple[_Run, int]] = []  # run, batch index of its logits
        n = 0
        for run, take in parts:
            take = min(take, len(run.todo))
            pos = len(run.slot.cells)
            for offset, token in enumerate(run.todo[:take]):
                batch.token[n] = token
                batch.pos[n] = pos + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = run.slot.seq
                batch.logits[n] = 0
                n += 1
            run.slot.cells.extend(run.todo[:take])
            del run.todo[:take]
            if not run.todo:
                batch.logits[n - 1] = 1
                rows.append((run, n - 1))
        if n == 0:
            return
        batch.n_tokens = n
        code = api.llama_decode(self._ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode failed with code {code}")
        self.steps += 1
        self.widest = max(self.widest, len(rows))
        for run, row in rows:
            logits = np.ctypeslib.as_array(api.llama_get_logits_ith(self._ctx, row),
                                           shape=(self._n_vocab,))
            if not run.made and run.slot.logits is None:
                run.slot.logits = logits.copy()
                run.slot.logits_at = len(run.slot.cells)
            self._next(run, logits)

    def _next(self, run: _Run, logits: np.ndarray) -> None:
        """Sample the next token of ``run`` and decide, as ``Llama`` does, whether it ends."""
        token = self._sample(run.sampler, logits)
        request = run.request
        if self._api.llama_token_is_eog(self._vocab, token):
            self._finish(run, text=run.text)
            return
        run.made.append(token)
        run.text += self._piece(token, len(run.made) == 1)
        for k, char in enumerate(run.text[-3:]):  # Llama's rule for a split UTF-8 character
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    run.utf8_wait = num - k
        if run.utf8_wait > 0 and len(run.slot.cells) + 1 < self.context_tokens:
            run.utf8_wait -= 1
            run.todo = [token]
            return
        stops = [s for s in request.stop if s in run.text]
        if stops:
            self._finish(run, text=run.text[:run.text.index(stops[0])])
        elif len(run.made) >= request.max_tokens or len(run.slot.cells) + 1 >= self.context_tokens:
            self._finish(run, text=run.text)
        else:
            run.todo = [token]

    def _sample(self, sampler: Any, logits: np.ndarray) -> int:
        api = self._api
        data = np.empty(self._n_vocab, dtype=TOKEN_DATA)
        data["id"] = self._ids
        data["logit"] = logits
        data["p"] = 0.0
        candidates = api.llama_token_data_array(
            data=data.ctypes.data_as(api.llama_token_data_p), size=self._n_vocab,
            selected=-1, sorted=False)
        api.llama_sampler_apply(sampler.sampler, ctypes.byref(candidates))
        token = int(candidates.data[candidates.selected].id)
        api.llama_sampler_accept(sampler.sampler, token)
        return token

    def _piece(self, token: int, first: bool) -> bytes:
        """The bytes of one token, as ``Llama.detokenize`` of the whole completion has them."""
        buffer = (ctypes.c_char * 64)()
        size = self._api.llama_token_to_piece(self._vocab, token, buffer, 64, 0, False)
        piece = bytes(buffer[:size])
        if first and token == self._api.llama_vocab_bos(self._vocab) and piece[:1] == b" ":
            piece = piece[1:]  # Llama drops the space a leading BOS brings
        return piece

    def _finish(self, run: _Run, text: bytes = b"", error: BaseException | None = None) -> None:
        if run in self._runs:
            self._runs.remove(run)
        run.slot.busy = False
        run.sampler.close()
        if error is not None:
            _answer(run.request.future, error=error)
            return
        _answer(run.request.future, result={
            "text": text.decode("utf-8", errors="ignore"),
            "prompt_tokens": len(run.request.prompt),
            "completion_tokens": len(run.made),
        })


def _answer(future: Future[dict[str, Any]], *, result: dict[str, Any] | None = None,
            error: BaseException | None = None) -> None:
    """Settle a future unless its caller has gone (cancelled)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or {})
    except Exception:  # cancelled between the check and the set
        pass
