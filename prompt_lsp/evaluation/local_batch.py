"""Several generations of one GGUF model decoded together, in one llama.cpp context.

Why: on a CPU, one decoding step of a small model is mostly reading its weights. Gemma 3
270M's output layer alone is 168 M parameters (a 262k-token vocabulary), and one step costs
15 ms for one sequence but 107 ms for fourteen (7.6 ms each). So the examples an evaluation
sends at once share each step ("continuous batching"): a new request takes a free sequence as
soon as one finishes, and its prompt is read in the same steps in which the others generate.

Each sequence has its own part of the key-value cache (`kv_unified = False`: attention then
spans only that sequence's cells, not all of them). A new prompt starts from the longest
prefix any sequence holds, copied over (the instructions and demonstrations every example
shares are read once), and only the rest is decoded.

Sampling is llama.cpp's own sampler chain per sequence, built as llama-cpp-python's
`create_completion` builds it, with its defaults; the outputs are those of that call (a
different batch can change a greedy choice where two tokens are nearly tied).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prompt_lsp.evaluation.local_model import Generation, LocalModelError, merged_stops

CONTEXT_TOKENS = 2048  # per sequence: prompt and generation
MAX_SEQUENCES = 8  # decoded together; 8 and 14 ran the 14-example sample equally fast
SEQUENCES_MODEL_BYTES = 2 << 30  # a bigger model gets fewer sequences (its cache is bigger)
STEP_TOKENS = 512  # tokens per decoding step: prompt chunks wait, generation does not stall
DEFAULT_MAX_TOKENS = 256  # when the prompt sets none (create_completion's 16 is too few)
_PENALTY_LAST_N = 64  # llama-cpp-python's default history for repeat penalties


TokenCallback = Callable[[int], None]  # tokens generated so far


class ThreadPacing(Protocol):
    def next_count(self, starting: bool) -> int | None:
        """The thread count to use from now on, or None to keep the current one."""


def sequences_for(model_bytes: int) -> int:
    """How many sequences a model of this size decodes together: MAX_SEQUENCES up to
    256 MiB, fewer for bigger ones, one above 1 GiB (each sequence's cache grows with it)."""
    return max(1, min(MAX_SEQUENCES, SEQUENCES_MODEL_BYTES // max(model_bytes, 1)))


@dataclass
class _Request:
    tokens: list[int]
    max_tokens: int
    stops: list[str]
    sampler: Any  # llama-cpp-python's LlamaSampler: the request's own chain (None: greedy)
    abort: threading.Event | None
    on_token: TokenCallback | None
    future: Future[Generation] = field(default_factory=Future)
    started: float = field(default_factory=time.perf_counter)


@dataclass
class _Sequence:
    """One sequence of the cache: what it holds, and the request it is generating for."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)  # prompt, then generated tokens
    in_cache: int = 0  # tokens[:in_cache] are in the key-value cache
    request: _Request | None = None
    generated: list[int] = field(default_factory=list)


class BatchDecoder:
    """One loaded model, one context of `sequences` sequences, one decoding thread."""

    def __init__(
        self, path: str, threads: int, sequences: int, pacing: ThreadPacing | None = None
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._llama_cpp = llama_cpp
        self._internals = _internals
        model_params = llama_cpp.llama_model_default_params()
        try:
            self._model = _internals.LlamaModel(path_model=path, params=model_params, verbose=True)
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = CONTEXT_TOKENS * sequences
            params.n_batch = params.n_ubatch = STEP_TOKENS
            params.n_seq_max = sequences
            params.kv_unified = False
            params.n_threads = params.n_threads_batch = threads
            self._context = _internals.LlamaContext(model=self._model, params=params, verbose=True)
        except (ValueError, RuntimeError, OSError) as err:
            raise LocalModelError(f"cannot load {Path(path).name}: {err}") from err
        self._memory = llama_cpp.llama_get_memory(self._context.ctx)
        self._vocab_size = self._model.n_vocab()
        self._batch = llama_cpp.llama_batch_init(STEP_TOKENS, 0, 1)
        self._sequences = [_Sequence(seq_id) for seq_id in range(sequences)]
        self._waiting: list[_Request] = []
        self._wake = threading.Condition()
        self._closing = False
        self._pacing, self._threads = pacing, threads
        self._thread = threading.Thread(target=self._decode_forever, name="decode", daemon=True)
        self._thread.start()

    @property
    def sequences(self) -> int:
        return len(self._sequences)

    @property
    def threads(self) -> int:
        return self._threads

    # ------------------------------------------------------------------ callers' side

    def submit(
        self,
        prompt: str,
        params: dict[str, Any],
        abort: threading.Event | None = None,
        on_token: TokenCallback | None = None,
    ) -> Future[Generation]:
        """Queue a completion of `prompt`; `abort` ends it at its next token (with what it
        has), `on_token(n)` follows it. The future fails with LocalModelError."""
        tokens = self._model.tokenize(prompt.encode("utf-8", "replace"), True, True)
        if len(tokens) >= CONTEXT_TOKENS:
            raise LocalModelError(
                f"Requested tokens ({len(tokens)}) exceed context window of {CONTEXT_TOKENS}"
            )
        wanted = params.get("max_tokens") or params.get("max_completion_tokens")
        room = CONTEXT_TOKENS - len(tokens)
        try:
            max_tokens = min(int(wanted), room) if wanted else min(DEFAULT_MAX_TOKENS, room)
        except (TypeError, ValueError):
            raise LocalModelError(f"max_tokens must be a number, not {wanted!r}") from None
        try:
            sampler = self._sampler(params)
        except (TypeError, ValueError) as err:
            raise LocalModelError(f"invalid sampling setting: {err}") from None
        request = _Request(tokens, max_tokens, _stops(params), sampler, abort, on_token)
        with self._wake:
            if self._closing:
                raise LocalModelError("the local model was closed")
            self._waiting.append(request)
            self._wake.notify()
        return request.future

    def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        abort: threading.Event | None = None,
        on_token: TokenCallback | None = None,
    ) -> Generation:
        return self.submit(prompt, params, abort, on_token).result()

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(10)
        if self._thread.is_alive():
            return  # a step is stuck in C: freeing under it would crash
        self._llama_cpp.llama_batch_free(self._batch)
        with contextlib.suppress(Exception):
            self._context.close()
            self._model.close()

    # ------------------------------------------------------------------ the decoding thread

    def _decode_forever(self) -> None:
        working = False
        while True:
            with self._wake:
                while not self._closing and not self._waiting and not self._busy():
                    self._wake.wait()
                if self._closing:
                    self._fail_all(LocalModelError("the local model was closed"))
                    return
            admitted: _Request | None = None
            try:
                with self._wake:
                    if self._waiting and self._free():  # one a step: the next may share a prefix
                        admitted = self._waiting.pop(0)
                        self._admit(admitted)
                self._pace(starting=not working)
                self._step()
                working = self._busy() or bool(self._waiting)
            except Exception as err:  # a bug must fail the requests, not hang them
                error = LocalModelError(f"the local model failed: {type(err).__name__}: {err}")
                if admitted is not None and not admitted.future.done():
                    admitted.future.set_exception(error)
                self._fail_busy(error)

    def _pace(self, starting: bool) -> None:
        count = self._pacing.next_count(starting) if self._pacing is not None else None
        if count is not None and count != self._threads:
            self._threads = count
            self._llama_cpp.llama_set_n_threads(self._context.ctx, count, count)

    def _busy(self) -> bool:
        return any(s.request is not None for s in self._sequences)

    def _free(self) -> list[_Sequence]:
        return [s for s in self._sequences if s.request is None]

    def _admit(self, request: _Request) -> None:
        """Give `request` a free sequence, starting from the longest prefix in the cache: its
        own if that is longest, else a copy of another sequence's."""

        def shared(sequence: _Sequence) -> int:
            return _common_prefix(sequence.tokens[: sequence.in_cache], request.tokens)

        target = max(self._free(), key=shared)
        source = max(self._sequences, key=shared)
        # the last prompt token is decoded again in any case: its logits give the first token
        wanted = min(shared(source), len(request.tokens) - 1)
        own = min(shared(target), wanted)
        if own < wanted:
            reused = wanted if self._copy_prefix(source, target, wanted) else 0
        else:
            reused = own if self._cut(target, own) else 0
        if reused == 0:
            self._cut(target, -1)
        target.tokens = list(request.tokens)
        target.in_cache = reused
        target.request = request
        target.generated = []

    def _cut(self, sequence: _Sequence, keep: int) -> bool:
        """Drop `sequence`'s cache after `keep` tokens (all of it for -1); False when the
        model's cache cannot be cut there (recurrent models)."""
        return bool(self._llama_cpp.llama_memory_seq_rm(self._memory, sequence.seq_id, keep, -1))

    def _copy_prefix(self, source: _Sequence, target: _Sequence, length: int) -> bool:
        """Copy `source`'s cache into `target`'s, then cut it to `length` tokens. Between
        separate sequence caches llama.cpp copies whole ones only."""
        self._cut(target, -1)
        self._llama_cpp.llama_memory_seq_cp(self._memory, source.seq_id, target.seq_id, -1, -1)
        return self._cut(target, length)

    def _sampler(self, params: dict[str, Any]) -> Any:
        """The chain llama-cpp-python's create_completion builds, with its defaults; None
        for plain greedy decoding (temperature 0, no penalty), which takes the first highest
        logit as llama.cpp's greedy sampler does, without copying the 262k logits first."""
        penalties = (
            float(params.get("repeat_penalty") or 1.0),
            float(params.get("frequency_penalty") or 0.0),
            float(params.get("presence_penalty") or 0.0),
        )
        temperature = params.get("temperature")
        temperature = 0.8 if temperature is None else float(temperature)
        if temperature == 0 and penalties == (1.0, 0.0, 0.0):
            return None
        sampler = self._internals.LlamaSampler()
        sampler.add_penalties(self._vocab_size, _PENALTY_LAST_N, *penalties)
        seed = params.get("seed")
        seed = int(seed) & 0xFFFFFFFF if seed is not None else self._llama_cpp.LLAMA_DEFAULT_SEED
        if temperature < 0:
            sampler.add_dist(seed)
        elif temperature == 0:
            sampler.add_greedy()
        else:
            top_p = params.get("top_p")
            sampler.add_top_k(int(params.get("top_k") or 40))
            sampler.add_typical(1.0, 1)
            sampler.add_top_p(0.95 if top_p is None else float(top_p), 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(temperature)
            sampler.add_dist(seed)
        return sampler

    def _step(self) -> None:
        """One llama_decode of every busy sequence's next tokens, then one token each for
        those whose prompt is all read."""
        llama_cpp, batch = self._llama_cpp, self._batch
        for sequence in self._sequences:
            request = sequence.request
            if request is not None and request.abort is not None and request.abort.is_set():
                self._finish(sequence, "stop")
        count, sampled = 0, []
        # generating sequences first (one token each), prompts in what room is left: a long
        # prompt must not hold the others' next tokens back
        reading_last = sorted(self._sequences, key=lambda s: len(s.tokens) - s.in_cache > 1)
        for sequence in reading_last:
            if sequence.request is None or count >= STEP_TOKENS:
                continue
            todo = sequence.tokens[sequence.in_cache : sequence.in_cache + STEP_TOKENS - count]
            for offset, token in enumerate(todo):
                batch.token[count] = token
                batch.pos[count] = sequence.in_cache + offset
                batch.n_seq_id[count] = 1
                batch.seq_id[count][0] = sequence.seq_id
                last = sequence.in_cache + offset == len(sequence.tokens) - 1
                batch.logits[count] = last
                if last:
                    sampled.append((sequence, count))
                count += 1
            sequence.in_cache += len(todo)
        if count == 0:
            return
        batch.n_tokens = count
        code = llama_cpp.llama_decode(self._context.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        for sequence, index in sampled:
            self._take_token(sequence, index)

    def _take_token(self, sequence: _Sequence, index: int) -> None:
        llama_cpp = self._llama_cpp
        request = sequence.request
        assert request is not None
        if request.sampler is None:
            logits = llama_cpp.llama_get_logits_ith(self._context.ctx, index)
            token = int(np.ctypeslib.as_array(logits, shape=(self._vocab_size,)).argmax())
        else:
            token = llama_cpp.llama_sampler_sample(
                request.sampler.sampler, self._context.ctx, index
            )
        if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            self._finish(sequence, "stop")
            return
        sequence.tokens.append(token)
        sequence.generated.append(token)
        if request.on_token is not None:
            with contextlib.suppress(Exception):
                request.on_token(len(sequence.generated))
        text = self._model.detokenize(sequence.generated).decode("utf-8", "ignore")
        cut = _first_stop(text, request.stops)
        if cut is not None:
            self._finish(sequence, "stop", text[:cut])
        elif len(sequence.generated) >= request.max_tokens:
            self._finish(sequence, "length", text)

    def _finish(self, sequence: _Sequence, reason: str, text: str | None = None) -> None:
        """Answer the sequence's request with `text` (by default, what it generated up to
        a stop sequence); the sequence keeps its cache for the prompts that follow."""
        request = sequence.request
        if request is None:
            return
        if text is None:
            text = self._model.detokenize(sequence.generated).decode("utf-8", "ignore")
            cut = _first_stop(text, request.stops)
            text = text if cut is None else text[:cut]
        sequence.request = None
        _close_sampler(request)
        generation = Generation(
            text=text,
            prompt_tokens=len(request.tokens),
            completion_tokens=len(sequence.generated),
            finish_reason=reason,
            seconds=time.perf_counter() - request.started,
        )
        if not request.future.done():
            request.future.set_result(generation)

    def _fail_busy(self, error: Exception) -> None:
        for sequence in self._sequences:
            request = sequence.request
            if request is not None:
                sequence.request, sequence.in_cache = None, 0
                self._cut(sequence, -1)
                _close_sampler(request)
                if not request.future.done():
                    request.future.set_exception(error)

    def _fail_all(self, error: Exception) -> None:
        self._fail_busy(error)
        for request in self._waiting:
            _close_sampler(request)
            if not request.future.done():
                request.future.set_exception(error)
        self._waiting.clear()


def _common_prefix(a: list[int], b: list[int]) -> int:
    return len(os.path.commonprefix([a, b]))  # works on any sequences, not only paths


def _stops(params: dict[str, Any]) -> list[str]:
    return [s for s in merged_stops(params.get("stop")) if s]


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [at for at in (text.find(s) for s in stops) if at >= 0]
    return min(found) if found else None


def _close_sampler(request: _Request) -> None:
    if request.sampler is not None:
        with contextlib.suppress(Exception):
            request.sampler.close()
        request.sampler = None
