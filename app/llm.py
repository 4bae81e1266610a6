"""llama.cpp with speech vectors injected as prompt embeddings, streaming greedy tokens.

One batch holds either token ids or embeddings, so a prompt is decoded in runs: the fixed prefix
(once, kept in the KV cache), the speech vectors, the suffix tokens, then one token per step.
"""
from __future__ import annotations

import codecs
import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from voxprompt.manifest import ModelError, PromptTemplate


@dataclass(frozen=True)
class LlmOptions:
    n_threads: int = 0  # 0: one per physical core, as llama.cpp benchmarks best
    n_ctx: int = 1024  # prefix + 30 s of speech + suffix + the token bound fit with room to spare
    gpu_layers: int = -1  # -1: every layer when this llama.cpp build has a GPU back end
    flash_attn: bool = False  # set explicitly: llama-cpp-python and llama.cpp disagree on the default


@dataclass(frozen=True)
class RepetitionGuard:
    """Stops a decoding loop: the tokens end in back-to-back copies of one n-gram (n <= max_period)
    spanning at least min_span tokens. Natural repeats ("very, very") are shorter than that."""

    max_period: int = 16
    min_span: int = 8

    def loop_start(self, tokens: list[int]) -> int | None:
        """Where the repetition begins, keeping its first copy; None when the tail is no loop."""
        n = len(tokens)
        for period in range(1, self.max_period + 1):
            span = period * max(2, -(-self.min_span // period))
            if n >= span and all(tokens[n - span + i] == tokens[n - span + i % period] for i in range(span)):
                return n - span + period
        return None


@dataclass(frozen=True)
class TokenPiece:
    token: int
    text: str  # the decoded text this token completes (may be "" inside a multi-byte character)


_LOG_CALLBACK = None


def silence_llama_logs() -> None:
    """Route llama.cpp's own logging to nowhere (it writes to stderr by default)."""
    import llama_cpp

    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def physical_cores() -> int:
    count = os.cpu_count() or 1
    try:
        import psutil  # optional: hyper-threads slow llama.cpp down

        count = psutil.cpu_count(logical=False) or count
    except ImportError:
        pass
    return max(1, count)


class SpeechPromptLLM:
    """A GGUF LLM that reads [prefix tokens, speech vectors, suffix tokens] and streams greedy tokens."""

    def __init__(self, gguf_path: str | Path, prompt: PromptTemplate, options: LlmOptions = LlmOptions(),
                 adapter_path: str | Path | None = None, guard: RepetitionGuard = RepetitionGuard()):
        import llama_cpp

        silence_llama_logs()
        self._lib = llama_cpp
        self.options = options
        self.guard = guard
        self.loop_at: int | None = None  # set by generate() when the guard stopped a loop
        self.gpu_offload = bool(llama_cpp.llama_supports_gpu_offload()) and options.gpu_layers != 0
        n_threads = options.n_threads or physical_cores()
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(gguf_path), n_ctx=options.n_ctx, n_batch=options.n_ctx, n_ubatch=512,
                n_threads=n_threads, n_threads_batch=n_threads,
                n_gpu_layers=options.gpu_layers if self.gpu_offload else 0,
                flash_attn=options.flash_attn, lora_path=str(adapter_path) if adapter_path else None,
                verbose=False,
            )
        except ValueError as exc:
            raise ModelError(f"{gguf_path}: llama.cpp cannot load it ({exc}); re-run `voxprompt export`") from None
        self._ctx = self._llama._ctx.ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama._model.model)
        self.width = int(llama_cpp.llama_model_n_embd(self._llama._model.model))
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self.n_batch = options.n_ctx
        self.prefix_ids = self.tokenize(prompt.prefix)
        self.suffix_ids = self.tokenize(prompt.suffix)
        stops = [self.tokenize(s) for s in prompt.stop]
        self.stop_ids = {ids[0] for ids in stops if len(ids) == 1}  # a stop string must be one token
        self._embd_batch = llama_cpp.llama_batch_init(self.n_batch, self.width, 1)
        self._token_batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._prefix_in_cache = False

    def close(self) -> None:
        if getattr(self, "_llama", None) is not None:
            self._lib.llama_batch_free(self._embd_batch)
            self._lib.llama_batch_free(self._token_batch)
            self._llama.close()
            self._llama = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- text <-> tokens ------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def is_stop(self, token: int) -> bool:
        return token in self.stop_ids or bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="replace")

    # -- decoding -------------------------------------------------------------------------------
    def _decode_tokens(self, tokens: list[int], start: int, want_logits: bool) -> None:
        b = self._token_batch
        for offset in range(0, len(tokens), self.n_batch):
            chunk = tokens[offset: offset + self.n_batch]
            b.n_tokens = len(chunk)
            for i, tok in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0] = tok, start + offset + i, 1, 0
                b.logits[i] = False
            last = offset + len(chunk) == len(tokens)
            b.logits[len(chunk) - 1] = want_logits and last
            self._check(self._lib.llama_decode(self._ctx, b))

    def _decode_embeddings(self, vectors: np.ndarray, start: int, want_logits: bool) -> None:
        b = self._embd_batch
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for offset in range(0, len(vectors), self.n_batch):
            chunk = vectors[offset: offset + self.n_batch]
            n = len(chunk)
            ctypes.memmove(b.embd, chunk.ctypes.data, chunk.nbytes)
            b.n_tokens = n
            for i in range(n):
                b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = start + offset + i, 1, 0, False
            b.logits[n - 1] = want_logits and offset + n == len(vectors)
            self._check(self._lib.llama_decode(self._ctx, b))

    @staticmethod
    def _check(status: int) -> None:
        if status != 0:
            raise RuntimeError(f"llama_decode failed (status {status})")

    def _logits(self) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def reset(self) -> None:
        """Forget everything, the cached prefix too."""
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self._ctx), True)
        self._prefix_in_cache = False

    def _start(self) -> int:
        """Keep the fixed prefix in the KV cache (decoded once) and drop what came after it."""
        memory = self._lib.llama_get_memory(self._ctx)
        if self._prefix_in_cache:
            self._lib.llama_memory_seq_rm(memory, 0, len(self.prefix_ids), -1)
        else:
            self._lib.llama_memory_clear(memory, True)
            self._decode_tokens(self.prefix_ids, 0, want_logits=False)
            self._prefix_in_cache = True
        return len(self.prefix_ids)

    def generate(self, speech: np.ndarray, max_new_tokens: int) -> Iterator[TokenPiece]:
        """Greedy tokens for one segment's speech vectors [n, width], streamed as they are decoded."""
        if speech.ndim != 2 or speech.shape[1] != self.width:
            raise ModelError(f"speech vectors are {speech.shape[-1]} wide, the LLM reads {self.width}; "
                             "the encoder and LLM come from different models")
        budget = self.n_ctx - len(self.prefix_ids) - len(speech) - len(self.suffix_ids)
        max_new_tokens = min(max_new_tokens, budget)
        pos = self._start()
        self._decode_embeddings(speech, pos, want_logits=False)
        pos += len(speech)
        self._decode_tokens(self.suffix_ids, pos, want_logits=True)
        pos += len(self.suffix_ids)
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tokens: list[int] = []
        self.loop_at = None
        for _ in range(max_new_tokens):
            token = int(np.argmax(self._logits()))
            if self.is_stop(token):
                break
            tokens.append(token)
            self.loop_at = self.guard.loop_start(tokens)
            if self.loop_at is not None:
                break  # the caller keeps tokens[:loop_at]
            yield TokenPiece(token, utf8.decode(self._piece(token)))
            self._decode_tokens([token], pos, want_logits=True)
            pos += 1

    def forced_logits(self, speech: np.ndarray, tokens: list[int]) -> np.ndarray:
        """Logits at each step of the speech prompt followed by `tokens` (teacher forcing): [len(tokens) + 1, vocab].
        For measuring how far a quantised model drifts from another along the same transcript."""
        pos = self._start()
        self._decode_embeddings(speech, pos, want_logits=False)
        pos += len(speech)
        self._decode_tokens(self.suffix_ids, pos, want_logits=True)
        pos += len(self.suffix_ids)
        rows = [self._logits().copy()]
        for token in tokens:
            self._decode_tokens([token], pos, want_logits=True)
            pos += 1
            rows.append(self._logits().copy())
        return np.stack(rows)

    def prompt_logits(self, vectors: np.ndarray | None = None, tokens: list[int] | None = None) -> np.ndarray:
        """Logits after the prefix plus either raw vectors or tokens: for checking injection."""
        pos = self._start()
        if vectors is not None:
            self._decode_embeddings(vectors, pos, want_logits=True)
        else:
            self._decode_tokens(list(tokens or []), pos, want_logits=True)
        return self._logits().copy()
