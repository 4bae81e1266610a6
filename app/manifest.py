"""manifest.json: the one description of an exported model directory, written by export, read by the app."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from voxprompt.audio import SAMPLE_RATE

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class ModelError(Exception):
    """A model directory that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class PromptTemplate:
    """prefix tokens, speech vectors, suffix tokens, then the transcript up to a stop token. With a
    context (`--context`, `--hotwords`), `context_prefix` with {context} filled in replaces the prefix."""

    prefix: str
    suffix: str
    stop: tuple[str, ...] = ()  # besides the LLM's own end-of-generation tokens
    context_prefix: str = ""  # "": this model takes no context

    def prefix_for(self, context: str = "") -> str:
        """The prefix that goes before the speech, with the user's context in it when there is one."""
        context = " ".join(context.split())  # one line: a newline would end the chat turn's layout
        if not context:
            return self.prefix
        if "{context}" not in self.context_prefix:
            raise ModelError("this model's prompt has no place for a context; drop --context/--hotwords")
        return self.context_prefix.replace("{context}", context)


# SmolLM2-Instruct's chat format around the speech; the prefix never changes, so it stays in the KV cache.
# A context goes in the system turn, where an instruct model looks for what conditions its answer.
DEFAULT_PROMPT = PromptTemplate(
    prefix="<|im_start|>system\nTranscribe the speech.<|im_end|>\n<|im_start|>user\n",
    suffix="<|im_end|>\n<|im_start|>assistant\n",
    stop=("<|im_end|>",),
    context_prefix="<|im_start|>system\nTranscribe the speech. Context: {context}<|im_end|>\n<|im_start|>user\n",
)


@dataclass(frozen=True)
class TokenBound:
    """At most per_second * seconds + extra new tokens per segment: a runaway loop ends there."""

    per_second: float
    extra: int

    def __call__(self, seconds: float) -> int:
        return int(math.ceil(self.per_second * seconds)) + self.extra


# For DEFAULT_PROMPT's English transcripts: generous (speech runs at about 3-4 tokens per second).
DEFAULT_TOKEN_BOUND = TokenBound(per_second=6.0, extra=12)


@dataclass(frozen=True)
class EncoderSpec:
    file: str
    name: str
    pad_multiple: int  # samples: the input is zero-padded to a multiple of this (the padding policy)
    vectors_per_second: float
    max_seconds: float  # longest segment the encoder accepts (the VAD splits longer speech)
    providers_hint: str = "any"
    min_samples: int = 0  # shorter segments are zero-padded to this (strided convolutions need a few frames)
    window_samples: int = 0  # > 0: the graph encodes each input inside this many samples of zeros (Whisper's 30 s)


@dataclass(frozen=True)
class LlmSpec:
    file: str
    name: str
    width: int  # embedding width: the encoder's output must match it
    quantization: str
    adapter: str | None = None  # a GGUF LoRA adapter applied at load time


@dataclass(frozen=True)
class CtcSpec:
    """The bridge's CTC head (the training's alignment signal), used at decoding: ctc.py."""

    file: str  # .npz: classes [1 + n, width] (blank first), scale, token_ids [n]
    weight: float = 0.3  # of the CTC prefix score against the LLM's log-probability
    candidates: int = 8  # the LLM's top tokens rescored at each step
    # .npy float16 [n_vocab, width]: every token's embedding row, so that the words of a context or an
    # adapter's text become classes at run time (the head's own classes are the training text's tokens,
    # and decoding only proposes tokens it can score); "": no such file
    token_rows: str = ""


@dataclass(frozen=True)
class Manifest:
    encoder: EncoderSpec
    llm: LlmSpec
    prompt: PromptTemplate
    token_bound: TokenBound
    ctc: CtcSpec | None = None  # None: plain greedy decoding
    sample_rate: int = SAMPLE_RATE
    format_version: int = FORMAT_VERSION
    sha256: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @property
    def model_id(self) -> str:
        """A short name for exactly these model files (their hashes) and this manifest: a transcript made
        by another model is not taken for one of this model's."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def adapter_base_id(self) -> str:
        """What a domain adapter is trained against: the LLM's weights (the model's own LoRA merged in or
        beside them), the prompt and the speech vectors' kind. A rebuild that changes only how the
        encoder runs (int8 weights, another builder version) keeps the adapters made for the model."""
        llm = self.llm
        parts = {"llm": asdict(llm), "weights": [self.sha256.get(llm.file, ""), self.sha256.get(llm.adapter or "", "")],
                 "prompt": asdict(self.prompt), "encoder": [self.encoder.name, self.encoder.vectors_per_second]}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        """Built from parsed JSON, every field checked against its type: ManifestFieldError names the first
        one that is missing, unknown or of the wrong kind."""
        fields = dict(_typed_fields(cls, d, "manifest"))
        return cls(
            encoder=_build(EncoderSpec, fields["encoder"], "encoder"),
            llm=_build(LlmSpec, fields["llm"], "llm"),
            prompt=_build(PromptTemplate, fields["prompt"], "prompt"),
            token_bound=_build(TokenBound, fields["token_bound"], "token_bound"),
            ctc=_build(CtcSpec, fields["ctc"], "ctc") if fields.get("ctc") else None,
            **{k: fields[k] for k in ("sample_rate", "format_version", "sha256", "provenance") if k in fields},
        )


class ManifestFieldError(ValueError):
    """A manifest field that is missing, unknown or of the wrong type."""


_NESTED = {"encoder": dict, "llm": dict, "prompt": dict, "token_bound": dict, "ctc": (dict, type(None))}


def _matches(value, hint: str) -> bool:
    """JSON value against a field's annotation (as written in this module)."""
    hint = hint.replace(" ", "")
    if hint.endswith("|None"):
        return value is None or _matches(value, hint[:-5])
    if hint == "str":
        return isinstance(value, str)
    if hint == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if hint == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint == "bool":
        return isinstance(value, bool)
    if hint.startswith("tuple[str"):
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if hint == "dict[str,str]":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return True  # nested specs: checked by their own fields


def _typed_fields(cls, d, where: str):
    from dataclasses import MISSING, fields

    if not isinstance(d, dict):
        raise ManifestFieldError(f"{where} must be a JSON object")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ManifestFieldError(f"{where}.{unknown[0]} is not a field this voxprompt knows")
    for name, f in known.items():
        if name not in d:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ManifestFieldError(f"{where}.{name} is missing")
            continue
        value = d[name]
        nested = _NESTED.get(name) if cls is Manifest else None
        ok = isinstance(value, nested) if nested else _matches(value, str(f.type))
        if not ok:
            raise ManifestFieldError(f"{where}.{name} is {type(value).__name__}, expected {f.type}")
        yield name, tuple(value) if str(f.type).startswith("tuple") else value


def _build(cls, d, where: str):
    return cls(**dict(_typed_fields(cls, d, where)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_files(manifest: Manifest) -> list[str]:
    ctc = (manifest.ctc.file, manifest.ctc.token_rows) if manifest.ctc else ()
    return [f for f in (manifest.encoder.file, manifest.llm.file, manifest.llm.adapter, *ctc) if f]


def write_manifest(directory: Path, manifest: Manifest) -> Manifest:
    """Hash the model's files into the manifest and write it last (its presence marks a complete model)."""
    from dataclasses import replace

    hashes = {name: sha256_file(directory / name) for name in model_files(manifest)}
    manifest = replace(manifest, sha256=hashes)
    tmp = directory / (MANIFEST_NAME + ".partial")
    tmp.write_text(manifest.to_json())
    tmp.replace(directory / MANIFEST_NAME)
    return manifest


def load_manifest(directory: str | Path, verify: bool = True) -> Manifest:
    """Read and check a model directory: version, sample rate, files present and matching their hashes."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.exists():
        raise ModelError(f"{directory}: no {MANIFEST_NAME}; build a model with `voxprompt export`")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}); re-run `voxprompt export`") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: not a manifest (a JSON object is expected); re-run `voxprompt export`")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{path}: format version {version}, this voxprompt reads {FORMAT_VERSION}; re-export the model")
    try:
        manifest = Manifest.from_dict(raw)
    except ManifestFieldError as exc:
        raise ModelError(f"{path}: malformed manifest ({exc}); re-run `voxprompt export`") from None
    if manifest.sample_rate != SAMPLE_RATE:
        raise ModelError(f"{path}: sample rate {manifest.sample_rate}, the runtime works at {SAMPLE_RATE}")
    for name in model_files(manifest):
        file = directory / name
        if not file.exists():
            raise ModelError(f"{directory}: {name} is missing; re-run `voxprompt export`")
        if verify and manifest.sha256.get(name) != sha256_file(file):
            raise ModelError(f"{directory}: {name} does not match its sha256 in the manifest; re-run `voxprompt export`")
    return manifest
