"""llama.cpp with speech vectors injected as prompt embeddings, streaming transcript tokens.

One batch holds either token ids or embeddings, so a prompt is decoded in runs: the fixed prefix
(once, kept in the KV cache), the speech vectors with the suffix tokens' embedding rows beside them
(token_rows.py; a separate run of tokens where the rows cannot be had exactly), then one token per
step. This is the adapter below the decoding loop: decoding.py drives it (search.py chooses the tokens).
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from voxprompt.cores import OtherLoad
from voxprompt.manifest import ModelError, PromptTemplate
from voxprompt.search import RepetitionGuard
from voxprompt.signals import register_callback
from voxprompt.token_rows import TokenRows

FILE_PARALLEL = 5  # segments in flight when transcribing files: one llama.cpp step advances them all
# (on 2 cores 5 are as fast as 6 or 8; each seat's 4 hypotheses hold KV cells, and with Whisper base's
# larger encoder 6 seats took peak RSS past 500 MB)
# Tokens llama.cpp computes at once: its compute buffer scales with this (64 MB at 512, 25 MB at 128)
# and a prompt of up to ~200 speech vectors takes two passes instead of one.
UBATCH = 128

K_CACHE_TYPES = ("f16", "q8_0")  # ggml types llama.cpp can hold keys in without flash attention

__all__ = ["FILE_PARALLEL", "LlmOptions", "RepetitionGuard", "SpeechPromptLLM"]


@dataclass(frozen=True)
class LlmOptions:
    n_threads: int = 0  # 0: one per physical core, as llama.cpp benchmarks best
    n_parallel: int = 1  # speech prompts decoded together (file transcription batches its segments)
    beam_size: int = 4  # hypotheses kept per prompt, each on a seat of its own; 1: greedy decoding
    n_ctx: int = 0  # KV cells of each sequence for a segment's speech vectors and new tokens (the prompt's
    # own tokens come on top); 0: 1024, room for a 30 s segment. The Transcriber sizes it from the VAD's
    # longest segment: the KV cache is most of a seat's RSS, and llama.cpp gives a seat 256 cells at a time.
    k_cache: str = "q8_0"  # the K cache's type: "q8_0" holds keys in 47 % less memory than "f16", the
    # dev sets' WER unchanged (the V cache stays f16: a quantised one needs flash attention, which drifts)
    gpu_layers: int = -1  # -1: every layer when this llama.cpp build has a GPU back end
    flash_attn: bool = False  # set explicitly (llama-cpp-python and llama.cpp disagree on the default); on,
    # greedy output drifts from the PyTorch reference: 40 % WER on real speech instead of 35 %
    share_cores: bool = True  # with n_threads 0: one thread fewer per core other processes keep busy,
    # read before each batch (2 cores, one busy: files RTF 0.089 with 1 thread, 0.109 with 2 waiting
    # on each other; a dictation final 1173 ms against 1333)

    def __post_init__(self):
        if self.n_parallel < 1 or self.beam_size < 1:
            raise ValueError(f"n_parallel and beam_size must be at least 1 (got {self.n_parallel}, {self.beam_size})")
        if self.k_cache not in K_CACHE_TYPES:
            raise ValueError(f"k_cache must be one of {K_CACHE_TYPES} (got {self.k_cache!r})")

    @property
    def seats(self) -> int:
        """llama.cpp sequences: every prompt decoded together needs one per hypothesis."""
        return self.n_parallel * self.beam_size

    @property
    def cells_per_sequence(self) -> int:
        return self.n_ctx or 1024


# libgomp's spins before a thread sleeps at a barrier (~20 us here). llama.cpp's threads meet at one
# barrier per graph node, microseconds apart: sleeping at once costs a futex wake-up at each (files
# 24 % slower, an adapter's extra nodes +76 % instead of +21-45 %), while libgomp's own default (~3 ms)
# spins on cores that other processes need.
OPENMP_SPINS = 1000


def llama_library():
    """The llama_cpp module, its OpenMP threads set to spin briefly, then sleep. llama.cpp's CPU threads
    meet in OpenMP barriers many times per token and libgomp spins there for milliseconds by default:
    with the cores busy elsewhere (training, a build, another transcription) a 2.4 s segment took 80 s
    to decode. libgomp reads the setting when llama.cpp loads it, hence one door for every import; a
    user's own setting (either variable) wins."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "passive"
        os.environ["GOMP_SPINCOUNT"] = str(OPENMP_SPINS)
    import llama_cpp

    return llama_cpp


def release_openmp_threads() -> None:
    """Let the OpenMP workers this thread has started go (a thread that is done with llama.cpp, or hands it
    to another). libgomp keeps a pool of workers for every thread that has run llama.cpp, and once its
    pools hold more threads than there are cores it stops spinning at barriers: a model loaded on one
    thread and decoded on another (dictation's worker) decoded 1.7x slower on 2 cores. Nothing where the
    OpenMP runtime is not libgomp or predates OpenMP 5 (omp_pause_resource_all)."""
    try:
        gomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_NOW)  # only the one llama.cpp loaded
        pause = gomp.omp_pause_resource_all
    except (OSError, AttributeError):
        return
    pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
    pause(1)  # omp_pause_soft: the workers exit; the next parallel region on this thread starts new ones


_LOG_CALLBACK = None


@register_callback
def _drop_log(level, text, user_data) -> None:
    return None


def silence_llama_logs() -> None:
    """Route llama.cpp's own logging to nowhere (it writes to stderr by default)."""
    llama_cpp = llama_library()

    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(_drop_log)
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
    """A GGUF LLM that reads [prefix tokens, speech vectors, suffix tokens] and streams transcript tokens.

    Seats 0..n_seats-1 (n_parallel prompts x beam_size hypotheses) are sequences with KV cells of their
    own (a cache shared by all would make every prompt attend over every other sequence's cells, masked:
    twice the cost of a prompt at 8). Each seat decodes the fixed prefix once and keeps it between prompts."""

    def __init__(self, gguf_path: str | Path, prompt: PromptTemplate, options: LlmOptions = LlmOptions(),
                 adapters: Sequence[tuple[str | Path, float]] = (), guard: RepetitionGuard = RepetitionGuard(),
                 context: str = ""):
        """`adapters`: LoRA GGUFs and their scales, applied at load (the model's own first, if it has one).
        `context`: text the prompt carries before the speech (the template's context_prefix)."""
        llama_cpp = llama_library()
        silence_llama_logs()
        self._lib = llama_cpp
        self._model = self._ctx = None
        self._adapters: dict[Path, object] = {}  # loaded LoRA adapters by file, kept until close
        self.options = options
        self.guard = guard
        self.n_parallel = options.n_parallel
        self.beam_size = options.beam_size
        self.n_seats = options.seats
        self.gpu_offload = bool(llama_cpp.llama_supports_gpu_offload()) and options.gpu_layers != 0
        self.path = gguf_path = Path(gguf_path)
        self._load_model(gguf_path, options)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.width = int(llama_cpp.llama_model_n_embd(self._model))
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.prefix_ids = self.tokenize(prompt.prefix_for(context))
        self.suffix_ids = self.tokenize(prompt.suffix)
        prompt_cells = len(self.prefix_ids) + len(self.suffix_ids)  # a context's tokens among them
        self._make_context(gguf_path, replace(options, n_ctx=options.cells_per_sequence + prompt_cells))
        self._most_threads = self.threads  # what a free machine gets
        self._other_load = OtherLoad() if options.share_cores and not options.n_threads else None
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx)) // self.n_seats  # per seat
        self.n_batch = int(llama_cpp.llama_n_batch(self._ctx))
        stops = [self.tokenize(s) for s in prompt.stop]
        self.stop_ids = {ids[0] for ids in stops if len(ids) == 1}  # a stop string must be one token
        self._embd_batch = llama_cpp.llama_batch_init(self.n_batch, self.width, 1)
        self._token_batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._prefix_in_cache: set[int] = set()  # seats whose KV cells start with the prefix
        try:
            self._token_rows: TokenRows | None = TokenRows(gguf_path)
        except (ValueError, KeyError, OSError):
            self._token_rows = None  # a layout this reader does not know: tokens go in a run of their own
        self._rows_exact = False
        self.set_adapters(adapters)
        release_openmp_threads()  # loading ran OpenMP here; decoding may well run on another thread

    def _load_model(self, gguf_path: Path, options: LlmOptions) -> None:
        lib = self._lib
        _init_backend()
        if not gguf_path.is_file():
            raise ModelError(f"{gguf_path}: no such model file; re-run `voxprompt export`")
        model_params = lib.llama_model_default_params()
        model_params.n_gpu_layers = 0
        if self.gpu_offload:
            model_params.n_gpu_layers = 0x7FFFFFFF if options.gpu_layers < 0 else options.gpu_layers
        self._model = lib.llama_model_load_from_file(str(gguf_path).encode(), model_params)
        if not self._model:
            raise ModelError(f"{gguf_path}: llama.cpp cannot load it; re-run `voxprompt export`")

    def _make_context(self, gguf_path: Path, options: LlmOptions) -> None:
        lib = self._lib
        params = lib.llama_context_default_params()
        cells, seats = options.cells_per_sequence, options.seats
        params.n_ctx, params.n_batch, params.n_ubatch = cells * seats, cells, min(cells, UBATCH)
        params.n_seq_max, params.kv_unified = seats, False
        params.type_k = getattr(lib, f"GGML_TYPE_{options.k_cache.upper()}")
        params.n_threads = params.n_threads_batch = options.n_threads or physical_cores()
        params.flash_attn_type = (lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if options.flash_attn
                                  else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        self._ctx = lib.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise ModelError(f"{gguf_path}: llama.cpp cannot make a context of {seats} x {cells} cells")

    @property
    def threads(self) -> int:
        return int(self._lib.llama_n_threads(self._ctx))

    def set_threads(self, n: int) -> None:
        """Decode with n threads from the next batch on (the context keeps everything else); fewer while
        other processes keep cores busy, with `share_cores`."""
        self._most_threads = n
        self._use_threads(n)

    def _use_threads(self, n: int) -> None:
        if n != self.threads:
            self._lib.llama_set_n_threads(self._ctx, n, n)

    def set_adapters(self, adapters: Sequence[tuple[str | Path, float]]) -> None:
        """Apply exactly these LoRA adapters at these scales, from the next prompt on. The base model
        stays loaded; an adapter file is read once and kept. The cached prefix was computed under the
        previous adapters, so every seat starts afresh."""
        lib = self._lib
        handles = []
        for path, _ in adapters:
            path = Path(path)
            if path not in self._adapters:
                handle = lib.llama_adapter_lora_init(self._model, str(path).encode()) if path.is_file() else None
                if not handle:
                    raise ModelError(f"{path}: llama.cpp cannot load this LoRA adapter for this model")
                self._adapters[path] = handle
            handles.append(self._adapters[path])
        n = len(handles)
        if lib.llama_set_adapters_lora(self._ctx, (lib.llama_adapter_lora_p_ctypes * max(1, n))(*handles), n,
                                       (ctypes.c_float * max(1, n))(*(float(scale) for _, scale in adapters))):
            raise ModelError(f"llama.cpp cannot apply the LoRA adapters {[str(p) for p, _ in adapters]}")
        self.applied_adapters = tuple((Path(path), float(scale)) for path, scale in adapters)
        self.reset()
        self._rows_exact = self._token_rows is not None and self._rows_match_tokens()

    def _rows_match_tokens(self) -> bool:
        """Whether the suffix fed as embedding rows gives the logits its tokens give: some architectures
        scale token embeddings inside the graph (Gemma), an adapter may change them."""
        seat = 0
        logits = []
        for feed, suffix in ((self._decode_tokens, self.suffix_ids),
                             (self._decode_embeddings, self._token_rows.rows(self.suffix_ids))):
            try:
                feed(suffix, self._start(seat), want_logits=True, seq=seat)
                logits.append(self._logits().copy())
            finally:
                self.release(seat)
        return bool(np.allclose(logits[0], logits[1], rtol=0.0, atol=1e-3))

    def close(self) -> None:
        lib = self._lib
        if self._ctx:
            lib.llama_batch_free(self._embd_batch)
            lib.llama_batch_free(self._token_batch)
            lib.llama_free(self._ctx)
        for handle in self._adapters.values():
            lib.llama_adapter_lora_free(handle)
        self._adapters.clear()
        if self._model:
            lib.llama_model_free(self._model)
        self._model = self._ctx = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- text <-> tokens ------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        tokens = (self._lib.llama_token * (len(data) + 8))()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, len(tokens), False, True)
        if n < 0:
            raise ModelError(f"llama.cpp cannot tokenize {text[:40]!r}")
        return list(tokens[:n])

    def is_stop(self, token: int) -> bool:
        return token in self.stop_ids or bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    # -- llama_decode in runs: a batch holds either token ids or embeddings ----------------------
    def _decode_tokens(self, tokens: list[int], start: int, want_logits: bool, seq: int) -> None:
        b = self._token_batch
        for offset in range(0, len(tokens), self.n_batch):
            chunk = tokens[offset: offset + self.n_batch]
            b.n_tokens = len(chunk)
            for i, tok in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0] = tok, start + offset + i, 1, seq
                b.logits[i] = False
            last = offset + len(chunk) == len(tokens)
            b.logits[len(chunk) - 1] = want_logits and last
            self._decode(b)

    def _decode_embeddings(self, vectors: np.ndarray, start: int, want_logits: bool, seq: int) -> None:
        b = self._embd_batch
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for offset in range(0, len(vectors), self.n_batch):
            chunk = vectors[offset: offset + self.n_batch]
            n = len(chunk)
            ctypes.memmove(b.embd, chunk.ctypes.data, chunk.nbytes)
            b.n_tokens = n
            for i in range(n):
                b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = start + offset + i, 1, seq, False
            b.logits[n - 1] = want_logits and offset + n == len(vectors)
            self._decode(b)

    def _decode(self, batch) -> None:
        if self._other_load is not None:  # threads waiting at barriers for a core someone else holds
            self._use_threads(max(1, self._most_threads - round(self._other_load.cores())))
        status = self._lib.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed (status {status})")

    def _logits(self, index: int = -1) -> np.ndarray:
        """The logits of the index-th output of the last batch (valid until the next decode)."""
        ptr = self._lib.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _memory(self):
        return self._lib.llama_get_memory(self._ctx)

    def reset(self) -> None:
        """Forget everything, the cached prefix too."""
        self._lib.llama_memory_clear(self._memory(), True)
        self._prefix_in_cache.clear()

    # -- one seat's speech prompt: what decoding.decode_many drives ------------------------------
    def capacity(self) -> int:
        """KV cells of one seat left once the prefix is in."""
        return self.n_ctx - len(self.prefix_ids)

    def cells_for(self, speech: np.ndarray) -> int:
        """Cells a prompt takes beyond the prefix."""
        return len(speech) + len(self.suffix_ids)

    def _start(self, seat: int) -> int:
        """An empty seat but for the prefix (decoded once per seat, kept in the KV cache)."""
        memory = self._memory()
        if seat in self._prefix_in_cache:
            self._lib.llama_memory_seq_rm(memory, seat, len(self.prefix_ids), -1)
        else:
            self._lib.llama_memory_seq_rm(memory, seat, -1, -1)
            self._decode_tokens(self.prefix_ids, 0, want_logits=False, seq=seat)
            self._prefix_in_cache.add(seat)
        return len(self.prefix_ids)

    def prefill(self, seat: int, speech: np.ndarray, given: Sequence[int] = ()) -> tuple[np.ndarray, int]:
        """Decode [prefix][speech][suffix][given transcript tokens] on a seat: the logits of the next token,
        and its position. Given tokens ride with the suffix (a few ms each, against ~20 for a step)."""
        if speech.ndim != 2 or speech.shape[1] != self.width:
            raise ModelError(f"speech vectors are {speech.shape[-1]} wide, the LLM reads {self.width}; "
                             "the encoder and LLM come from different models")
        pos = self._start(seat)
        tokens = self.suffix_ids + list(given)
        if self._rows_exact:  # one pass: the tokens as their embedding rows, after the speech
            self._decode_embeddings(np.concatenate([speech, self._token_rows.rows(tokens)]), pos,
                                    want_logits=True, seq=seat)
        else:
            self._decode_embeddings(speech, pos, want_logits=False, seq=seat)
            self._decode_tokens(tokens, pos + len(speech), want_logits=True, seq=seat)
        return self._logits(), pos + len(speech) + len(tokens)

    def step(self, feeds: list[tuple[int, int, int]]) -> list[np.ndarray]:
        """One token for each (seat, token, position) in one batch: the logits that follow each.
        Give the seats in increasing order: otherwise llama.cpp splits the batch (3x slower at 8)."""
        b = self._token_batch
        b.n_tokens = len(feeds)
        for i, (seat, token, pos) in enumerate(feeds):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = token, pos, 1, seat, True
        self._decode(b)
        return [self._logits(i) for i in range(len(feeds))]

    def fork(self, source: int, destination: int) -> None:
        """Make a seat a copy of another (a hypothesis that branches). Seats are separate KV streams, so
        llama.cpp copies the source's whole buffer, before the next decode: ~10 MB, about a millisecond."""
        self._lib.llama_memory_seq_cp(self._memory(), source, destination, -1, -1)
        if source in self._prefix_in_cache:
            self._prefix_in_cache.add(destination)
        else:
            self._prefix_in_cache.discard(destination)

    def release(self, seat: int) -> None:
        """Drop what followed the prefix on this seat (nothing to drop once the model is closed)."""
        if self._ctx:
            self._lib.llama_memory_seq_rm(self._memory(), seat, len(self.prefix_ids), -1)

    # -- measurements ---------------------------------------------------------------------------
    def forced_logits(self, speech: np.ndarray, tokens: list[int]) -> np.ndarray:
        """Logits at each step of the speech prompt followed by `tokens` (teacher forcing): [len(tokens) + 1, vocab].
        For measuring how far a quantised model drifts from another along the same transcript."""
        seat = 0
        logits, pos = self.prefill(seat, speech)
        rows = [logits.copy()]
        try:
            for token in tokens:
                self._decode_tokens([token], pos, want_logits=True, seq=seat)
                pos += 1
                rows.append(self._logits().copy())
        finally:
            self.release(seat)
        return np.stack(rows)

    def prompt_logits(self, vectors: np.ndarray | None = None, tokens: list[int] | None = None) -> np.ndarray:
        """Logits after the prefix plus either raw vectors or tokens: for checking injection."""
        seat = 0
        pos = self._start(seat)
        try:
            if vectors is not None:
                self._decode_embeddings(vectors, pos, want_logits=True, seq=seat)
            else:
                self._decode_tokens(list(tokens or []), pos, want_logits=True, seq=seat)
            return self._logits().copy()
        finally:
            self.release(seat)


_BACKEND_READY = False


def _init_backend() -> None:
    global _BACKEND_READY
    if not _BACKEND_READY:
        llama_library().llama_backend_init()
        _BACKEND_READY = True
