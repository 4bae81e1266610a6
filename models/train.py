"""The training recipe: stage 1 aligns the projector with CTC, stage 2 adds the LM loss and LoRA.

    python -m voxprompt.models.train --data data/ --out runs/default [--device cuda]

Stage 1 (LLM frozen, no LLM forward): CTC over the projector's speech vectors, whose classifier is the
LLM's own frozen token-embedding rows (+ a learned blank), pulling speech vectors towards embeddings
the LLM already reads. Stage 2: LM loss on the transcript through the LLM with LoRA adapters, plus a
smaller CTC term. The encoder is frozen unless `encoder_top_blocks` > 0: then its last blocks train too,
on frames cached below them. Resumable: a checkpoint is written every `checkpoint_every` steps.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxprompt.manifest import DEFAULT_PROMPT, DEFAULT_TOKEN_BOUND
from voxprompt.models.assets import smollm2_gguf
from voxprompt.models.context import rare_words
from voxprompt.models.ctc_head import CtcHeadWeights
from voxprompt.models.dataset import read_shard, shards
from voxprompt.models.evaluate import wer
from voxprompt.models.features import encode_shard, read_frames
from voxprompt.models.frontend import ENCODER_FRAMES_PER_SECOND
from voxprompt.models.projector import ProjectorDims
from voxprompt.models.speech_llm import Projector
from voxprompt.models.whisper import EncoderBelow, EncoderTop, load_whisper_encoder


@dataclass
class TrainConfig:
    encoder: str = "tiny.en"
    splits: str = "train,train_real,train_nonspeech"  # corpus splits trained on; add train_natural if built;
    # "name*K" draws a split K times as often (its examples repeated), e.g. train_nonspeech*8
    stack: int = 8  # encoder frames (50 per second) per speech vector: 6.25 vectors per second
    ctc_upsample: int = 2  # CTC frames per speech vector (the CTC head needs more frames than tokens)
    projector_hidden: int = 1024
    encoder_top_blocks: int = 0  # > 0: the encoder's last blocks train with the bridge (frames cached below them)
    encoder_lr: float = 1e-4
    time_mask: float = 0.0  # SpecAugment on the cached frames: about this fraction of frames zeroed, in 100 ms spans
    channel_mask: float = 0.0  # and one band of this fraction of the frame's channels zeroed per example
    encoder_window: bool = False  # encode each utterance inside Whisper's 30 s window (as Whisper was trained)
    stage1_steps: int = 1500
    stage1_batch: int = 32
    stage1_lr: float = 1e-3
    stage2_steps: int = 2000
    stage2_batch: int = 16
    bucket_window: float = 0.0  # > 0: a batch's examples come from this share of the corpus nearest in length
    stage2_lr: float = 5e-4
    lora_lr: float = 3e-4
    ctc_weight: float = 0.3
    ctc_lr: float = -1.0  # the CTC head's stage-2 rate apart from the projector's (adapt: the head alone); < 0: stage2_lr
    context_share: float = 0.0  # of stage-2 prompts that carry a context (models/context.py)
    token_noise: float = 0.0  # of the transcript's input tokens replaced by a random corpus token (labels kept),
    # so the LLM cannot lean on the words before alone and must read the speech (its fluency overruled it)
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_trained: tuple[str, ...] = ()  # of lora_targets, those that learn (the rest stay as loaded); (): all
    lora_layers: int = 0  # > 0: only the LLM's last this many layers' LoRA learns (the rest stay as loaded)
    warmup: int = 100
    eval_every: int = 500
    eval_size: int = 100
    checkpoint_every: int = 250
    deadline_minutes: float = 0.0  # > 0: stage 2 stops early to export within this wall time (from launch)
    init_from: str = ""  # a run's checkpoint.pt to start from (a projector stacking other frame counts is restacked)
    init_encoder: str = ""  # the encoder init_from was trained on, when not this run's: its first layer restarts
    seed: int = 0
    device: str = "cpu"
    threads: int = 0


@dataclass
class Example:
    frames: np.ndarray  # [t, d_encoder] float16, 50 per second
    tokens: list[int]
    text: str
    source: str


def load_llm(device: str):
    """SmolLM2 from the installed GGUF, dequantised to a float PyTorch model, plus its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return model.to(device), tokenizer


def load_split(data: Path, split: str, encoder, encoder_name: str, tokenizer, device: str,
               window: bool = False) -> list[Example]:
    examples = []
    for shard in shards(data, split):
        frames = read_frames(encode_shard(shard, encoder, encoder_name, device, window))
        for f, u in zip(frames, read_shard(shard)):
            tokens = tokenizer(u.text, add_special_tokens=False)["input_ids"]
            examples.append(Example(f, tokens, u.text, u.source))
    return examples


class CtcHead(nn.Module):
    """CTC classifier over a sub-vocabulary: frozen LLM embedding rows, a learned blank, a learned scale."""

    def __init__(self, embeddings: torch.Tensor, vocab: list[int], upsample: int = 1):
        super().__init__()
        width = embeddings.shape[1]
        self.register_buffer("rows", embeddings[vocab].detach().clone())
        self.blank = nn.Parameter(torch.zeros(width))
        self.scale = nn.Parameter(torch.tensor(1.0 / math.sqrt(width) * 8))
        self.index = {tok: i + 1 for i, tok in enumerate(vocab)}  # 0 is the blank
        self.upsample = None
        if upsample > 1:  # starts as copies of the vector: u identical frames
            self.upsample = nn.Linear(width, upsample * width)
            self.upsample.weight.data.copy_(torch.eye(width).repeat(upsample, 1))
            self.upsample.bias.data.zero_()

    def forward(self, speech: torch.Tensor) -> torch.Tensor:
        """[b, n, width] speech vectors -> [b, n * upsample, classes] logits."""
        if self.upsample is not None:
            speech = self.upsample(speech).reshape(*speech.shape[:-2], -1, speech.shape[-1])
        classes = torch.cat([self.blank[None], self.rows])
        return (speech @ classes.T) * self.scale

    @classmethod
    def from_weights(cls, weights: CtcHeadWeights, embeddings: torch.Tensor) -> "CtcHead":
        head = cls(embeddings, weights.token_ids.tolist(), weights.upsample)
        head.blank.data = torch.from_numpy(weights.blank)
        head.scale.data = torch.tensor(weights.scale)
        if head.upsample is not None:
            head.upsample.weight.data = torch.from_numpy(weights.upsample_weight)
            head.upsample.bias.data = torch.from_numpy(weights.upsample_bias)
        return head

    @property
    def frames_per_vector(self) -> int:
        return 1 if self.upsample is None else self.upsample.out_features // self.upsample.in_features

    def targets(self, tokens: list[int]) -> list[int]:
        return [self.index[t] for t in tokens if t in self.index]

    def to_weights(self) -> CtcHeadWeights:
        vocab = sorted(self.index, key=self.index.get)
        upsample = [] if self.upsample is None else [t.detach().float().cpu().numpy()
                                                      for t in (self.upsample.weight, self.upsample.bias)]
        return CtcHeadWeights(self.blank.detach().float().cpu().numpy(), float(self.scale.detach()), np.array(vocab, np.int32),
                              *upsample)


class Bridge(nn.Module):
    """What training adapts between the cached frames and the LLM: the encoder's top blocks, if any, and
    the projector. Called on one unpadded example, or on a padded batch with each row's frame count."""

    def __init__(self, projector: Projector, top: EncoderTop | None = None):
        super().__init__()
        self.projector, self.top = projector, top

    def forward(self, frames: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.top is not None:
            frames = self.top(frames, frame_lengths)
        return self.projector(frames)


def frame_lengths(batch: list[Example]) -> torch.Tensor:
    return torch.tensor([len(e.frames) for e in batch])


def _pad_frames(batch: list[Example], stack: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames right-padded with zeros (as the projector pads a last partial vector), and vectors per example."""
    t = max(len(e.frames) for e in batch)
    x = torch.zeros(len(batch), t, batch[0].frames.shape[1])
    for i, e in enumerate(batch):
        x[i, : len(e.frames)] = torch.from_numpy(e.frames.astype(np.float32))
    lengths = torch.tensor([-(-len(e.frames) // stack) for e in batch])
    return x.to(device), lengths


def mask_frames(frames: torch.Tensor, time_mask: float, channel_mask: float, generator: torch.Generator,
                span: int = 5) -> torch.Tensor:
    """SpecAugment on encoder frames [b, t, d]: spans of `span` frames, each frame starting one with
    probability time_mask / span, and one random band of channels per row, set to zero. Training only:
    it keeps the bridge from leaning on any one stretch or channel of the voices it has heard."""
    b, t, d = frames.shape
    keep = torch.ones(b, t, 1)
    if time_mask > 0:
        starts = torch.rand(b, t, generator=generator) < time_mask / span
        covered = torch.zeros(b, t + span, dtype=torch.bool)
        for k in range(span):
            covered[:, k: k + t] |= starts
        keep = keep * (~covered[:, :t]).float()[..., None]
    channels = torch.ones(b, 1, d)
    width = int(channel_mask * d)
    if width:
        first = torch.randint(0, d - width + 1, (b,), generator=generator)
        band = (torch.arange(d)[None] >= first[:, None]) & (torch.arange(d)[None] < first[:, None] + width)
        channels = (~band).float()[:, None, :]
    return frames * (keep * channels).to(frames.device)


def ctc_loss(head: CtcHead, speech: torch.Tensor, lengths: torch.Tensor, batch: list[Example]) -> torch.Tensor:
    log_probs = F.log_softmax(head(speech).float(), dim=-1).transpose(0, 1)  # [n, b, c]
    targets = [head.targets(e.tokens) for e in batch]
    device = log_probs.device
    flat = torch.tensor([t for ts in targets for t in ts], dtype=torch.long, device=device)
    target_lengths = torch.tensor([len(ts) for ts in targets], device=device)
    return F.ctc_loss(log_probs, flat, lengths.to(device) * head.frames_per_vector, target_lengths, blank=0,
                      zero_infinity=True)


class Stage2Batch:
    """[prefix | speech | suffix | transcript + end] per example, right-padded; loss on the transcript."""

    def __init__(self, model, prompt_ids: dict[str, list[int]], speech: torch.Tensor, lengths: torch.Tensor,
                 batch: list[Example], device: str, prefixes: list[list[int] | None] | None = None,
                 noise: "TokenNoise | None" = None):
        """`prefixes`: per example, a prefix of its own (one with a context) or None for the plain one.
        `noise`: replaces some of the transcript's input tokens; the labels stay the true ones."""
        embed = model.get_input_embeddings()
        plain = embed(torch.tensor(prompt_ids["prefix"], device=device))
        suffix = embed(torch.tensor(prompt_ids["suffix"], device=device))
        rows, labels = [], []
        for i, e in enumerate(batch):
            own = prefixes[i] if prefixes else None
            prefix = plain if own is None else embed(torch.tensor(own, device=device))
            text_ids = e.tokens + prompt_ids["end"]
            text = embed(torch.tensor(noise(text_ids) if noise else text_ids, device=device))
            rows.append(torch.cat([prefix, speech[i, : lengths[i]], suffix, text]))
            n_prompt = len(prefix) + int(lengths[i]) + len(suffix)
            labels.append([-100] * n_prompt + text_ids)
        width = max(len(r) for r in rows)
        self.embeds = torch.stack([F.pad(r, (0, 0, 0, width - len(r))) for r in rows])
        self.labels = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels], device=device)
        self.mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)


@dataclass
class TokenNoise:
    """Each transcript token the LLM reads (never the label it must predict) becomes, with probability
    `share`, a token drawn from `vocab`: the history it conditions on is sometimes wrong, as its own is."""

    share: float
    vocab: list[int]
    rng: random.Random

    def __call__(self, ids: list[int]) -> list[int]:
        return [self.rng.choice(self.vocab) if self.rng.random() < self.share else i for i in ids]


def lm_loss(model, b: Stage2Batch) -> torch.Tensor:
    """Next-token cross-entropy on the transcript. The output layer (49k rows, a fifth of the LLM's
    arithmetic) runs only where a label is: the prompt, speech and padding positions have none."""
    hidden = model.get_decoder()(inputs_embeds=b.embeds, attention_mask=b.mask).last_hidden_state
    labels = b.labels[:, 1:]
    scored = labels != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][scored])
    return F.cross_entropy(logits.float(), labels[scored])


class PhaseClock:
    """Where a step's time goes (batch, forward, backward, update), measured on the steps that are logged:
    a GPU runs ahead of Python, so each mark waits for it, which only those steps can afford."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.marks: list[tuple[str, float]] = []

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self.marks = [("start", self._now())]

    def mark(self, phase: str) -> None:
        if self.marks:
            self.marks.append((phase, self._now()))

    def report(self) -> str:
        spans = [f"{name} {1000 * (t - before):.0f}" for (name, t), (_, before) in zip(self.marks[1:], self.marks)]
        self.marks = []
        return "ms: " + ", ".join(spans)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


@torch.no_grad()
def greedy_transcripts(model, projector, prompt_ids, examples: list[Example], device: str, stop: set[int],
                       tokenizer) -> list[str]:
    """LLM-greedy decoding of each example (batch 1, KV cache), as the runtime does."""
    embed = model.get_input_embeddings()
    out = []
    for e in examples:
        frames = torch.from_numpy(e.frames.astype(np.float32))[None].to(device)
        speech = projector(frames)[0]
        prompt = torch.cat([embed(torch.tensor(prompt_ids["prefix"], device=device)), speech,
                            embed(torch.tensor(prompt_ids["suffix"], device=device))])[None]
        result = model(inputs_embeds=prompt, use_cache=True)
        cache = getattr(result, "cache", None) or getattr(result, "past_key_values", None)
        cache_name = "cache" if hasattr(result, "cache") else "past_key_values"
        tokens = []
        for _ in range(DEFAULT_TOKEN_BOUND(len(e.frames) / ENCODER_FRAMES_PER_SECOND)):
            nxt = int(result.logits[0, -1].argmax())
            if nxt in stop:
                break
            tokens.append(nxt)
            result = model(input_ids=torch.tensor([[nxt]], device=device), use_cache=True, **{cache_name: cache})
            cache = getattr(result, cache_name)
        out.append(tokenizer.decode(tokens))
    return out


def ctc_greedy(head: CtcHead, projector, examples: list[Example], device: str, tokenizer) -> list[str]:
    inverse = {i: t for t, i in head.index.items()}
    out = []
    with torch.no_grad():
        for e in examples:
            frames = torch.from_numpy(e.frames.astype(np.float32))[None].to(device)
            best = head(projector(frames))[0].argmax(-1).tolist()
            ids = [inverse[c] for k, c in enumerate(best) if c != 0 and (k == 0 or c != best[k - 1])]
            out.append(tokenizer.decode(ids))
    return out


LORA_GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
                   "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def permute(w: np.ndarray, heads: int, inverse: bool = False) -> np.ndarray:
    """HF's rotary row layout -> GGUF's, as llama.cpp's converter does (or back, with inverse)."""
    halves = (2, w.shape[0] // heads // 2)[::-1] if inverse else (2, w.shape[0] // heads // 2)
    return w.reshape(heads, *halves, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def import_lora_gguf(path: Path, n_head: int, n_kv: int) -> dict[str, torch.Tensor]:
    """A llama.cpp LoRA adapter GGUF (as export_lora_gguf writes it) as a peft state dict."""
    import gguf

    modules = {v: k for k, v in LORA_GGUF_NAMES.items()}
    state = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        _, layer, name, _, part = tensor.name.split(".")  # blk.<layer>.<name>.weight.lora_<a|b>
        module = modules[name]
        w = np.array(tensor.data, dtype=np.float32).reshape([int(d) for d in reversed(tensor.shape)])
        if part == "lora_b" and module in ("q_proj", "k_proj"):
            w = permute(w, n_head if module == "q_proj" else n_kv, inverse=True)
        parent = "self_attn" if module in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
        key = f"base_model.model.model.layers.{layer}.{parent}.{module}.lora_{part[-1].upper()}.default.weight"
        state[key] = torch.from_numpy(w)
    return state


def model_files_state(folder: Path, encoder: str, n_head: int, n_kv: int) -> dict:
    """A warm-start state from a trained model's files (projector-, ctc-, lora-<encoder>), as committed
    in models/trained/: the default model can be continued on a machine that never trained it."""
    from voxprompt.models.ctc_head import CtcHeadWeights
    from voxprompt.models.projector import ProjectorWeights

    projector = Projector.from_weights(ProjectorWeights.load(folder / f"projector-{encoder}.npz")).state_dict()
    head = CtcHeadWeights.load(folder / f"ctc-{encoder}.npz")
    ctc = {"blank": torch.from_numpy(head.blank), "scale": torch.tensor(head.scale)}
    if head.upsample_weight is not None:
        ctc["upsample.weight"] = torch.from_numpy(head.upsample_weight)
        ctc["upsample.bias"] = torch.from_numpy(head.upsample_bias)
    lora = import_lora_gguf(folder / f"lora-{encoder}.gguf", n_head, n_kv)
    return {"stage": 2, "step": 0, "projector": projector, "ctc": ctc, "lora": lora}


def inherited_ctc_vocab(config: TrainConfig) -> set[int]:
    """The tokens the CTC head of the model a run continues can hear (a trained model's folder): a run on
    a smaller corpus keeps them, so continuing a model never narrows what its head scores."""
    if not config.init_from or not Path(config.init_from).is_dir() or config.init_encoder:
        return set()
    from voxprompt.models.ctc_head import CtcHeadWeights

    path = Path(config.init_from) / f"ctc-{config.encoder}.npz"
    return set(CtcHeadWeights.load(path).token_ids.tolist()) if path.exists() else set()


def export_lora_gguf(model, path: Path, alpha: float) -> None:
    """Write the LoRA weights as a llama.cpp adapter GGUF (tensor names and Q/K layout as llama.cpp's)."""
    from voxprompt.export.merge_lora import lora_writer

    names = LORA_GGUF_NAMES
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads

    writer = lora_writer(path, alpha)
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items() if "lora_" in k}
    for key in sorted(state):
        if ".lora_A." not in key:
            continue
        layer = int(key.split(".layers.")[1].split(".")[0])
        module = key.split(".lora_A.")[0].rsplit(".", 1)[-1]
        a, b = state[key], state[key.replace(".lora_A.", ".lora_B.")]
        if module == "q_proj":
            b = permute(b, n_head)
        elif module == "k_proj":
            b = permute(b, n_kv)
        base = f"blk.{layer}.{names[module]}.weight"
        writer.add_tensor(base + ".lora_a", a.astype(np.float16))
        writer.add_tensor(base + ".lora_b", b.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def widened_projector_state(old: dict[str, torch.Tensor], d_in: int) -> dict[str, torch.Tensor]:
    """A projector state for k times as many stacked frames (d_in inputs): a new vector is the mean of the
    old first-layer pre-activations of its k parts (exactly the old vector when the k parts are equal)."""
    k = d_in // old["fc1.weight"].shape[1]
    if k * old["fc1.weight"].shape[1] != d_in:
        raise SystemExit(f"--init-from: cannot widen a {old['fc1.weight'].shape[1]}-input projector to {d_in} inputs")
    new = dict(old)
    new["norm.weight"], new["norm.bias"] = old["norm.weight"].repeat(k), old["norm.bias"].repeat(k)
    new["fc1.weight"] = old["fc1.weight"].repeat(1, k) / k
    return new


def narrowed_projector_state(old: dict[str, torch.Tensor], d_in: int, d_encoder: int) -> dict[str, torch.Tensor]:
    """A projector state for k times fewer stacked frames (d_in inputs): a new vector is the old vector of the
    same frames each repeated k times, i.e. the old projector on speech slowed k-fold. The LayerNorm's affine
    part is folded into the first layer (a window of repeated frames has the window's own mean and variance),
    so the map is exact and the run only has to teach the LLM side the faster vector rate."""
    old_in = old["fc1.weight"].shape[1]
    k = old_in // d_in
    if k < 2 or k * d_in != old_in or d_in % d_encoder:
        raise SystemExit(f"--init-from: cannot narrow a {old_in}-input projector to {d_in} inputs")
    stack = d_in // d_encoder
    w = (old["fc1.weight"] * old["norm.weight"]).reshape(-1, stack, k, d_encoder).sum(2).reshape(-1, d_in)
    new = dict(old)
    new["fc1.bias"] = old["fc1.bias"] + old["fc1.weight"] @ old["norm.bias"]
    new["fc1.weight"] = w
    new["norm.weight"] = torch.ones_like(old["norm.weight"][:d_in])
    new["norm.bias"] = torch.zeros_like(old["norm.bias"][:d_in])
    return new


def restacked_projector_state(old: dict[str, torch.Tensor], dims: ProjectorDims) -> dict[str, torch.Tensor]:
    """`old` for `dims`' stack: widened when it stacked fewer frames, narrowed when more, else as it is."""
    if old["fc1.weight"].shape[1] > dims.d_in:
        return narrowed_projector_state(old, dims.d_in, dims.d_encoder)
    return widened_projector_state(old, dims.d_in)


def transplanted_projector_state(old: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A projector state for another encoder: its input layers (norm, fc1) fresh, its output layer (fc2,
    into the LLM's width) the old run's, so the CTC head and LoRA it was trained with still read its output."""
    if old["fc2.weight"].shape != fresh["fc2.weight"].shape:
        raise SystemExit(f"--init-encoder: the old projector's hidden width {tuple(old['fc2.weight'].shape)} is not "
                         f"this run's {tuple(fresh['fc2.weight'].shape)}; set --projector-hidden to match")
    return {**fresh, "fc2.weight": old["fc2.weight"], "fc2.bias": old["fc2.bias"]}


FRESH_PROJECTOR_LAYERS = ("norm.", "fc1.")  # what a transplanted projector learns alone in stage 1


def split_repeats(spec: str) -> list[tuple[str, int]]:
    """`--splits` as (split, times): "train,train_nonspeech*8" -> [("train", 1), ("train_nonspeech", 8)]."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, times = item.partition("*")
        if times and not (times.isdigit() and int(times) > 0):
            raise SystemExit(f"--splits: {item!r}: a split is repeated a whole number of times, e.g. {name}*4")
        out.append((name, int(times or 1)))
    return out


def lora_learns(name: str, config: TrainConfig, n_layers: int) -> bool:
    """Whether a LoRA weight (by its PyTorch name) learns: of the projections `lora_trained` names (all
    when none), in the last `lora_layers` layers (all when 0)."""
    layer = re.search(r"\.layers\.(\d+)\.", name)
    return ((not config.lora_trained or any(f".{t}." in name for t in config.lora_trained))
            and (not config.lora_layers or (layer is not None and int(layer[1]) >= n_layers - config.lora_layers)))


class Trainer:
    def __init__(self, config: TrainConfig, data: Path, out: Path, log=print):
        self.config, self.data, self.out, self.log = config, data, out, log
        self.started = time.time()  # the deadline counts loading too: a lent machine's clock runs from here
        out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        if config.threads:
            torch.set_num_threads(config.threads)
        device = config.device
        encoder = load_whisper_encoder(config.encoder, device)
        top = config.encoder_top_blocks
        if top and config.encoder_window:
            raise SystemExit("--encoder-window and --encoder-top-blocks cannot be combined: the adapted blocks "
                             "are trained on each utterance's own frames; drop one of them")
        # Frames are cached where the frozen part of the encoder ends.
        cached, cache_name = (EncoderBelow(encoder, top), f"{config.encoder}.below{top}") if top else (encoder, config.encoder)
        self.llm, self.tokenizer = load_llm(device)
        self.llm.requires_grad_(False)
        t0 = time.time()
        dev_splits = [split for split in ("heldout", "real_dev", "game_dev") if shards(data, split)]
        repeats = dict(split_repeats(config.splits)) | {split: 1 for split in dev_splits}
        splits = {split: load_split(data, split, cached, cache_name, self.tokenizer, device, config.encoder_window)
                  * k for split, k in repeats.items()}
        # Evaluated as training goes: voices never trained on (game_dev: real people, when built).
        self.dev_sets = {name: splits.pop(name) for name in dev_splits}
        self.train = [e for examples in splits.values() for e in examples]
        self.by_length = sorted(range(len(self.train)), key=lambda i: len(self.train[i].frames))
        self.encoder_top = EncoderTop(encoder, top).train().to(device) if top else None
        del encoder, cached
        log(f"features ready in {time.time() - t0:.0f} s: {len(self.train)} train; "
            + ", ".join(f"{len(v)} {k}" for k, v in self.dev_sets.items()))
        d_llm = self.llm.config.hidden_size
        dims = ProjectorDims(config.stack, self.train[0].frames.shape[1], config.projector_hidden, d_llm)
        self.projector = Projector(dims).to(device)
        self.bridge = Bridge(self.projector, self.encoder_top)
        vocab = sorted({t for e in self.train for t in e.tokens} | inherited_ctc_vocab(config))
        self.ctc = CtcHead(self.llm.get_input_embeddings().weight, vocab, config.ctc_upsample).to(device)
        self.transplanted = bool(config.init_from and config.init_encoder and config.init_encoder != config.encoder)
        self.initial_lora = self.warm_start(Path(config.init_from)) if config.init_from else None
        tok = lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"]
        self.prompt_ids = {"prefix": tok(DEFAULT_PROMPT.prefix), "suffix": tok(DEFAULT_PROMPT.suffix),
                           "end": tok(DEFAULT_PROMPT.stop[0])}
        self.stop = {self.prompt_ids["end"][0], self.tokenizer.eos_token_id}
        self.rng = random.Random(config.seed)
        self.mask_rng = torch.Generator().manual_seed(config.seed)
        self.history: list[dict] = []
        # distractors for training contexts: every rarer word of the corpus
        self.context_pool = sorted({w for e in self.train for w in rare_words(e.text)})
        noise_rng = random.Random(config.seed + 1)
        self.token_noise = TokenNoise(config.token_noise, vocab, noise_rng) if config.token_noise else None

    # -- batches ---------------------------------------------------------------------------------
    def batch(self, size: int) -> list[Example]:
        """Examples drawn at random; with bucket_window > 0, the rest of a batch comes from the examples
        nearest in length to its first one (that share of the corpus), so little of a batch is padding."""
        n = len(self.train)
        if not self.config.bucket_window:
            return [self.train[self.rng.randrange(n)] for _ in range(size)]
        rank = self.rng.randrange(n)
        half = max(size, int(self.config.bucket_window * n)) // 2
        low = min(max(0, rank - half), n - 2 * half - 1)
        return [self.train[self.by_length[rank]]] + [self.train[self.by_length[self.rng.randint(low, low + 2 * half)]]
                                                     for _ in range(size - 1)]

    def prefixes(self, batch: list[Example]) -> list[list[int] | None] | None:
        """Per example, a prompt prefix with a context (context_share of them) or None (the plain one)."""
        from voxprompt.models.context import coined_context, coined_words, training_context

        tok = lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"]
        out = []
        for e in batch:
            coined = coined_words(e.source)
            if coined:  # always a context (most often with its words): copying a spelling is the lesson
                out.append(tok(DEFAULT_PROMPT.prefix_for(coined_context(coined, self.context_pool, self.rng))))
            elif self.rng.random() < self.config.context_share:
                out.append(tok(DEFAULT_PROMPT.prefix_for(training_context(e.text, self.context_pool, self.rng))))
            else:
                out.append(None)
        return out

    def frames(self, batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch's frames, padded (and masked when the config asks for SpecAugment)."""
        c = self.config
        frames, lengths = _pad_frames(batch, c.stack, c.device)
        if c.time_mask or c.channel_mask:
            frames = mask_frames(frames, c.time_mask, c.channel_mask, self.mask_rng)
        return frames, lengths

    def autocast(self):
        """bf16 autocast where the hardware computes in bf16 (a GPU; a CPU with AVX-512 BF16 or AMX). A CPU
        without it (AVX2 only) falls back to a scalar bf16 matrix product about 100x slower than float32."""
        device = self.config.device.split(":")[0]
        if device == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=torch.bfloat16)

    def warm_start(self, checkpoint: Path) -> dict | None:
        """Projector and CTC head from another run; its LoRA weights (returned) seed stage 2.

        A projector that stacked another number of frames is restacked (restacked_projector_state); one
        trained on another encoder (`init_encoder`) keeps only its output layer (transplanted_projector_state). `checkpoint` may also
        be a trained model's folder (models/trained/): its projector, CTC head and LoRA adapter."""
        c = self.config
        if checkpoint.is_dir():
            cfg = self.llm.config
            state = model_files_state(checkpoint, c.init_encoder or c.encoder, cfg.num_attention_heads,
                                      cfg.num_key_value_heads)
        else:
            state = torch.load(checkpoint, map_location=c.device, weights_only=False)
        if self.transplanted:
            self.projector.load_state_dict(transplanted_projector_state(state["projector"], self.projector.state_dict()))
        else:
            self.projector.load_state_dict(restacked_projector_state(state["projector"], self.projector.dims))
        # The embedding rows follow this corpus' vocabulary; an upsampling layer keeps its identity start.
        self.ctc.load_state_dict({k: v for k, v in state["ctc"].items() if k != "rows"}, strict=False)
        if self.encoder_top is not None and "encoder_top" in state:
            self.encoder_top.load_state_dict(state["encoder_top"])
        self.log(f"warm start from {checkpoint} (stage {state['stage']} step {state['step']})")
        return state.get("lora")

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, stage: int, step: int, optimizer) -> None:
        state = {"stage": stage, "step": step, "projector": self.projector.state_dict(),
                 "ctc": self.ctc.state_dict(), "optimizer": optimizer.state_dict(), "history": self.history,
                 "rng": self.rng.getstate(), "mask_rng": self.mask_rng.get_state()}
        if stage == 2:
            state["lora"] = {k: v for k, v in self.llm.state_dict().items() if "lora_" in k}
        if self.encoder_top is not None:
            state["encoder_top"] = self.encoder_top.state_dict()
        tmp = self.out / "checkpoint.pt.partial"
        torch.save(state, tmp)
        tmp.replace(self.out / "checkpoint.pt")

    def load(self) -> dict | None:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return None
        state = torch.load(path, map_location=self.config.device, weights_only=False)
        self.projector.load_state_dict(state["projector"])
        self.ctc.load_state_dict(state["ctc"])
        if self.encoder_top is not None:
            self.encoder_top.load_state_dict(state["encoder_top"])
        self.history = state["history"]
        self.rng.setstate(state["rng"])
        if "mask_rng" in state:
            self.mask_rng.set_state(state["mask_rng"])
        return state

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, stage: int, step: int) -> dict:
        n = self.config.eval_size
        sets = {name: examples[:: max(1, len(examples) // n)][:n] for name, examples in self.dev_sets.items()}
        row = {"stage": stage, "step": step}
        self.bridge.eval()
        for name, examples in sets.items():
            refs = [e.text for e in examples]
            row[f"{name}_ctc_wer"] = wer(refs, ctc_greedy(self.ctc, self.bridge, examples, self.config.device,
                                                           self.tokenizer))
            if stage == 2:
                with self.autocast():
                    hyps = greedy_transcripts(self.llm, self.bridge, self.prompt_ids, examples,
                                              self.config.device, self.stop, self.tokenizer)
                row[f"{name}_wer"] = wer(refs, hyps)
                row[f"{name}_example"] = f"{refs[0]!r} -> {hyps[0]!r}"
        self.bridge.train()
        self.history.append(row)
        self.log(json.dumps(row))
        return row

    # -- stages ----------------------------------------------------------------------------------
    def run(self) -> None:
        state = self.load()
        start_stage, start_step = (state["stage"], state["step"]) if state else (1, 0)
        if start_stage == 1:
            self.stage1(start_step, state)
            self.export()
            state, start_step = None, 0
        self.stage2(start_step, state)
        self.llm.eval()
        self.export()

    def encoder_group(self) -> list[dict]:
        """The optimizer group of the encoder's trained top blocks: none when the encoder stays frozen."""
        if self.encoder_top is None:
            return []
        c = self.config
        return [{"params": list(self.encoder_top.parameters()), "lr": c.encoder_lr, "base": c.encoder_lr}]

    def stage1(self, start: int, state) -> None:
        c = self.config
        learned = list(self.projector.parameters()) + list(self.ctc.parameters())
        if self.transplanted:  # the new input layers learn to speak to the old output layer, CTC head and LoRA
            learned = [p for n, p in self.projector.named_parameters() if n.startswith(FRESH_PROJECTOR_LAYERS)]
        groups = [{"params": learned, "base": c.stage1_lr}]
        groups += self.encoder_group()
        params = [p for g in groups for p in g["params"]]
        opt = torch.optim.AdamW(groups, lr=c.stage1_lr, weight_decay=0.01)
        if state:
            opt.load_state_dict(state["optimizer"])
        t0 = time.time()
        for step in range(start, c.stage1_steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, c.stage1_steps, g["base"], c.warmup)
            batch = self.batch(c.stage1_batch)
            frames, lengths = self.frames(batch)
            with self.autocast():
                loss = ctc_loss(self.ctc, self.bridge(frames, frame_lengths(batch)), lengths, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % 50 == 0:
                self.log(f"stage 1 step {step} ctc {loss.item():.3f} ({(time.time() - t0) / (step - start + 1):.2f} s/step)")
            if (step + 1) % c.eval_every == 0 or step + 1 == c.stage1_steps:
                self.evaluate(1, step + 1)
            if (step + 1) % c.checkpoint_every == 0:
                self.save(1, step + 1, opt)

    def stage2(self, start: int, state) -> None:
        from peft import LoraConfig, get_peft_model

        c = self.config
        lora = LoraConfig(r=c.lora_rank, lora_alpha=c.lora_alpha, target_modules=list(c.lora_targets),
                          lora_dropout=0.05, bias="none")
        self.llm = get_peft_model(self.llm, lora)
        lora_state = state["lora"] if state and "lora" in state else self.initial_lora
        if lora_state:
            self.llm.load_state_dict(lora_state, strict=False)
        # an adapter that changes few projections costs llama.cpp fewer graph nodes (lora_trained, lora_layers)
        learns = lambda n: lora_learns(n, c, self.llm.config.num_hidden_layers)  # noqa: E731
        lora_params = []
        for n, p in self.llm.named_parameters():
            if "lora_" in n:
                p.requires_grad_(learns(n))
                lora_params += [p] if learns(n) else []
        if c.ctc_lr < 0:  # one group, as checkpoints of runs made before `ctc_lr` hold
            bridge = [{"params": list(self.projector.parameters()) + list(self.ctc.parameters()), "lr": c.stage2_lr,
                       "base": c.stage2_lr}]
        else:
            bridge = [{"params": list(self.projector.parameters()), "lr": c.stage2_lr, "base": c.stage2_lr},
                      {"params": list(self.ctc.parameters()), "lr": c.ctc_lr, "base": c.ctc_lr}]
        opt = torch.optim.AdamW([
            *bridge,
            {"params": lora_params, "lr": c.lora_lr, "base": c.lora_lr},
            *self.encoder_group(),
        ], weight_decay=0.01)
        if state and state.get("stage") == 2:
            opt.load_state_dict(state["optimizer"])
        self.llm.train()
        t0 = time.time()
        deadline = self.started + c.deadline_minutes * 60 if c.deadline_minutes else None
        clock = PhaseClock(c.device)
        step_s = 0.0  # the last step's wall time: a step that cannot end before the deadline is not begun
        for step in range(start, c.stage2_steps):
            step_began = time.time()
            if deadline and step_began + step_s > deadline:
                self.log(f"deadline reached at stage 2 step {step}")
                self.llm.eval()
                self.export()  # first: the evaluation below may be cut short from outside
                if not self.history or self.history[-1]["step"] != step:  # not evaluated just now
                    self.evaluate(2, step)
                break
            progress = step / c.stage2_steps
            if deadline:  # with a time budget the schedule follows the clock, so it decays before the end
                progress = max(progress, (time.time() - t0) / max(1.0, deadline - t0))
            for g in opt.param_groups:
                g["lr"] = lr_at(int(progress * c.stage2_steps), c.stage2_steps, g["base"], c.warmup)
            if step % 25 == 0:
                clock.start()
            batch = self.batch(c.stage2_batch)
            frames, lengths = self.frames(batch)
            clock.mark("batch")
            with self.autocast():
                speech = self.bridge(frames, frame_lengths(batch))
                b = Stage2Batch(self.llm, self.prompt_ids, speech, lengths, batch, c.device, self.prefixes(batch),
                                self.token_noise)
                lm = lm_loss(self.llm, b)
                ctc = ctc_loss(self.ctc, speech, lengths, batch) if c.ctc_weight else torch.zeros(())
                loss = lm + c.ctc_weight * ctc
            clock.mark("forward")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clock.mark("backward")
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
            opt.step()
            clock.mark("update")
            if step % 25 == 0:
                self.log(f"stage 2 step {step} lm {lm.item():.3f} ctc {ctc.item():.3f} "
                         f"({(time.time() - t0) / (step - start + 1):.2f} s/step; {clock.report()})")
            if (step + 1) % c.eval_every == 0 or step + 1 == c.stage2_steps:
                self.llm.eval()
                self.evaluate(2, step + 1)
                self.export()  # a run stopped from outside still leaves its latest model
                self.llm.train()
            if (step + 1) % c.checkpoint_every == 0:
                self.save(2, step + 1, opt)
            step_s = time.time() - step_began

    def export(self) -> None:
        """projector-, ctc-, lora- (and encoder-) <encoder> files, train-config.json and metrics.json in out/."""
        c = self.config
        self.projector.to_weights().save(self.out / f"projector-{c.encoder}.npz")
        self.ctc.to_weights().save(self.out / f"ctc-{c.encoder}.npz")  # joint CTC/LLM decoding
        if self.encoder_top is not None:  # laid over the installed Whisper weights when encoder.onnx is built
            self.encoder_top.save(self.out / f"encoder-{c.encoder}.npz")
        if hasattr(self.llm, "peft_config"):  # stage 2 has begun
            export_lora_gguf(self.llm, self.out / f"lora-{c.encoder}.gguf", c.lora_alpha)
        (self.out / "train-config.json").write_text(json.dumps(asdict(c), indent=1))
        (self.out / "metrics.json").write_text(json.dumps(self.history, indent=1))
        self.log(f"exported to {self.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    for f in TrainConfig.__dataclass_fields__.values():
        if f.type in ("int", "float", "str"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=eval(f.type), default=f.default)
        elif f.type == "bool":
            parser.add_argument(f"--{f.name.replace('_', '-')}", action="store_true", default=f.default)
    args = parser.parse_args()
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__})
    Trainer(config, args.data, args.out, log=lambda m: print(m, flush=True)).run()


if __name__ == "__main__":
    main()
