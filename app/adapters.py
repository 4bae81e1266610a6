"""Domain adapters: LoRA GGUFs made by `voxprompt adapt`, installed by name, applied at load by llama.cpp
(switchable while loaded: dictation) or folded into a cached copy of the LLM's weights (files: no cost
per token).

An adapter folder holds adapter.gguf and adapter.json (what it was made from, and the model it was made
for: a LoRA is a change to one model's weights and means nothing on another's), and adapter-ctc.npz when
its training tuned the CTC head too (ctc.CtcShift).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from voxprompt.manifest import Manifest, ModelError

ADAPTER_FILE = "adapter.gguf"
ADAPTER_MANIFEST = "adapter.json"
ADAPTER_CTC_FILE = "adapter-ctc.npz"
ADAPTER_FORMAT = 1
FOLDED_KEPT = 3  # folded LLMs kept in the cache, the most recently used (each the LLM's size: 145 MB)


def adapters_dir() -> Path:
    """Where installed adapters live: VOXPROMPT_ADAPTERS, else the user data dir (beside the journal; unlike
    the model cache, an adapter cannot be rebuilt from installed packages)."""
    if os.environ.get("VOXPROMPT_ADAPTERS"):
        return Path(os.environ["VOXPROMPT_ADAPTERS"])
    from platformdirs import user_data_dir

    return Path(user_data_dir("voxprompt")) / "adapters"


@dataclass(frozen=True)
class AdapterInfo:
    """adapter.json: an adapter's provenance and the one model it belongs to."""

    name: str
    base_model_id: str  # Manifest.adapter_base_id of the model it was trained on
    sentences: int = 0  # spoken training sentences made from the user's text
    terms: tuple[str, ...] = ()  # the domain's words (given, or no dictionary has them): favoured in the search
    vocabulary: tuple[str, ...] = ()  # the words of its text: the CTC head learns to spell them when applied
    minutes: float = 0.0  # training wall time
    format_version: int = ADAPTER_FORMAT
    provenance: dict[str, str] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        tmp = folder / (ADAPTER_MANIFEST + ".partial")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(folder / ADAPTER_MANIFEST)  # last: its presence marks a complete adapter

    @classmethod
    def read(cls, folder: Path) -> "AdapterInfo":
        path = folder / ADAPTER_MANIFEST
        try:
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict) or raw.get("format_version") != ADAPTER_FORMAT:
                raise ValueError(f"format version {raw.get('format_version') if isinstance(raw, dict) else None}")
            info = cls(**{**raw, "terms": tuple(raw.get("terms", ())), "vocabulary": tuple(raw.get("vocabulary", ()))})
            if not (isinstance(info.name, str) and isinstance(info.base_model_id, str)):
                raise ValueError("name and base_model_id must be strings")
            return info
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {ADAPTER_MANIFEST}; not an adapter (make one with `voxprompt adapt`)") from None
        except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise ModelError(f"{path}: not a valid adapter manifest ({exc}); re-run `voxprompt adapt`") from None


@dataclass(frozen=True)
class AdapterChoice:
    """An adapter to apply, at a scale (0: off, 1: as trained)."""

    name: str
    path: Path  # its GGUF
    scale: float = 1.0
    vocabulary: tuple[str, ...] = ()  # AdapterInfo.vocabulary
    terms: tuple[str, ...] = ()  # AdapterInfo.terms
    ctc_shift: Path | None = None  # its change to the CTC head (ADAPTER_CTC_FILE), if it has one

    def as_llm_adapter(self) -> tuple[Path, float]:
        return self.path, self.scale


def parse_adapter_spec(spec: str) -> tuple[str, float]:
    """"NAME" or "NAME:SCALE" (a folder path may stand for NAME)."""
    name, sep, scale = spec.rpartition(":")
    if not sep or not name:
        return spec, 1.0
    try:
        value = float(scale)
    except ValueError:
        return spec, 1.0  # a colon that is part of a path
    if not 0.0 <= value <= 4.0:
        raise ModelError(f"--adapter {spec}: the scale must be between 0 and 4")
    return name, value


def adapter_folder(name: str) -> Path:
    """An installed adapter's folder, or a folder given by path."""
    path = Path(name).expanduser()
    if path.is_dir() or os.sep in name:
        return path
    return adapters_dir() / name


def resolve_adapter(spec: str, manifest: Manifest) -> AdapterChoice:
    """--adapter's value as an adapter for this model; a one-line ModelError otherwise."""
    name, scale = parse_adapter_spec(spec)
    folder = adapter_folder(name)
    if not folder.is_dir():
        installed = ", ".join(i.name for i in installed_adapters()) or "none"
        raise ModelError(f"--adapter {name}: no such adapter (installed: {installed}); make one with `voxprompt adapt`")
    info = AdapterInfo.read(folder)
    if info.base_model_id != manifest.adapter_base_id:
        raise ModelError(f"adapter {info.name} was made for model {info.base_model_id}, this model is "
                         f"{manifest.adapter_base_id}; re-run `voxprompt adapt` for it")
    if not (folder / ADAPTER_FILE).is_file():
        raise ModelError(f"{folder}: {ADAPTER_FILE} is missing; re-run `voxprompt adapt`")
    shift = folder / ADAPTER_CTC_FILE
    return AdapterChoice(info.name, folder / ADAPTER_FILE, scale, info.vocabulary, info.terms,
                         shift if shift.is_file() else None)


def installed_adapters() -> list[AdapterInfo]:
    """Complete adapters in adapters_dir(), by name; an unreadable one is left out."""
    root = adapters_dir()
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            found.append(AdapterInfo.read(folder))
        except ModelError:
            continue
    return found


def folded_dir() -> Path:
    """Where LLMs with adapters folded in are cached: beside the built models (rebuilt when missing)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("voxprompt")) / "folded"


def _identity(path: Path) -> list:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def folded_llm(llm: Path, adapters: Sequence[tuple[Path, float]], log: Callable[[str], None] | None = None) -> Path:
    """The LLM GGUF with these (adapter, scale) folded into its weights: built once (seconds), then read
    from the cache; an adapter made again (another file) is folded again."""
    key = hashlib.sha256(json.dumps([_identity(llm), *([*_identity(Path(p)), s] for p, s in adapters)]).encode())
    root = folded_dir()
    out = root / f"{llm.stem}-{key.hexdigest()[:16]}.gguf"
    if out.is_file():
        os.utime(out)  # recently used: kept
        return out
    from voxprompt.export.merge_lora import fold_loras

    if log:
        log(f"folding {len(adapters)} adapter(s) into the LLM's weights (once; cached in {root})")
    partial = root / f".{out.name}.{os.getpid()}.partial"
    try:
        root.mkdir(parents=True, exist_ok=True)
        fold_loras(llm, adapters, partial)
        partial.replace(out)
    except OSError as exc:
        raise ModelError(f"cannot write a folded LLM in {root} ({exc.strerror or exc}); make room there or make "
                         "it writable, or apply the adapters at load with --adapters-at-load") from None
    finally:
        with contextlib.suppress(OSError):  # gone once renamed; never made where the folder cannot be
            partial.unlink()
    for old in sorted(root.glob("*.gguf"), key=lambda p: p.stat().st_mtime, reverse=True)[FOLDED_KEPT:]:
        old.unlink(missing_ok=True)
    return out
