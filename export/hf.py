"""`voxprompt export hf --encoder DIR --projector FILE --llm DIR --out DIR`: Hugging Face parts, exported.

The encoder (HuBERT / wav2vec2 / WavLM / Whisper, transformers directory) and a voxprompt projector
(.npz from training) become encoder.onnx; the causal LM (any family llama.cpp's own converter knows:
Llama, GPT-NeoX, Qwen2, Gemma...) becomes GGUF through that converter, then is quantised. The prompt is
the one voxprompt's recipe trains with (manifest.DEFAULT_PROMPT).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from voxprompt.audio import SAMPLE_RATE
from voxprompt.export.gguf_llm import QUANTIZATIONS, check_prompt_tokenizes, finish_f16
from voxprompt.export.model_dir import building
from voxprompt.export.onnx_torch import export_torch_encoder, min_input_samples
from voxprompt.manifest import (DEFAULT_PROMPT, DEFAULT_TOKEN_BOUND, EncoderSpec, LlmSpec, Manifest, ModelError,
                                write_manifest)



def llama_cpp_converter() -> Path:
    """llama.cpp's convert_hf_to_gguf.py, unpacked by scripts/install.sh from the llama-cpp-python sdist."""
    override = os.environ.get("VOXPROMPT_HF_CONVERTER")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    from voxprompt.llm import llama_library

    llama_cpp = llama_library()

    # the converter of the very llama.cpp release this llama-cpp-python was built from
    path = Path(user_cache_dir("voxprompt")) / f"llama.cpp-{llama_cpp.__version__}" / "convert_hf_to_gguf.py"
    if not path.exists():
        raise ModelError(f"llama.cpp's converter is not at {path}; run scripts/install.sh (it unpacks it there)")
    return path


def convert_hf_llm(llm_dir: Path, out: Path) -> None:
    """A transformers causal LM directory -> f16 GGUF, by llama.cpp's own converter (its vocabulary handling)."""
    if not (llm_dir / "config.json").exists():
        raise ModelError(f"{llm_dir}: no config.json; point --llm at a transformers causal LM directory")
    if not any((llm_dir / f).exists() for f in ("tokenizer.json", "tokenizer.model", "spiece.model")):
        raise ModelError(f"{llm_dir}: no tokenizer (tokenizer.json or tokenizer.model); copy the model's "
                         "tokenizer files next to its config.json")
    result = subprocess.run([sys.executable, str(llama_cpp_converter()), str(llm_dir), "--outfile", str(out),
                             "--outtype", "f16"], capture_output=True, text=True)
    if result.returncode != 0 or not out.exists():
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise ModelError(f"llama.cpp's converter cannot convert {llm_dir}: {lines[-1] if lines else 'no output'}")


def export_hf(encoder_dir: str | Path, projector_file: str | Path, llm_dir: str | Path, out_dir: str | Path,
              quant: str = "q8_0", log=print) -> Path:
    from voxprompt.export.default_model import llm_width
    from voxprompt.models.hf_encoder import StackedSpeechEncoder, load_hf_encoder
    from voxprompt.models.projector import ProjectorWeights
    from voxprompt.models.speech_llm import Projector

    if quant not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quant!r}: choose one of {', '.join(QUANTIZATIONS)}")
    encoder_dir, llm_dir = Path(encoder_dir), Path(llm_dir)
    frames, info = load_hf_encoder(encoder_dir)
    weights = ProjectorWeights.load(projector_file)
    if weights.dims.d_encoder != info.width:
        raise ModelError(f"{projector_file} reads {weights.dims.d_encoder}-wide frames but {encoder_dir} gives "
                         f"{info.width}; use the projector trained on this encoder")
    config = json.loads((llm_dir / "config.json").read_text()) if (llm_dir / "config.json").exists() else {}
    hidden = config.get("hidden_size") or config.get("text_config", {}).get("hidden_size")
    if hidden is not None and hidden != weights.dims.d_llm:
        raise ModelError(f"{projector_file} writes {weights.dims.d_llm}-wide vectors but {llm_dir} reads {hidden}; "
                         "use the projector trained for this LLM")
    stack = weights.dims.stack
    min_samples = min_input_samples(list(info.conv_layers), stack) if info.conv_layers else info.pad_multiple
    with building(out_dir) as work:
        log(f"writing encoder.onnx ({info.name} + projector)")
        drift = export_torch_encoder(StackedSpeechEncoder(frames, Projector.from_weights(weights)),
                                     work / "encoder.onnx")
        log(f"encoder.onnx matches PyTorch to {drift:.1e}")
        log(f"converting {llm_dir} with llama.cpp's converter")
        f16 = work / "llm-f16.gguf"
        convert_hf_llm(llm_dir, f16)
        if llm_width(f16) != weights.dims.d_llm:
            raise ModelError(f"{llm_dir} is {llm_width(f16)} wide, the projector writes {weights.dims.d_llm}")
        check_prompt_tokenizes(f16, [DEFAULT_PROMPT.prefix, DEFAULT_PROMPT.suffix, *DEFAULT_PROMPT.stop])
        finish_f16(f16, work / "llm.gguf", quant, log)
        manifest = Manifest(
            encoder=EncoderSpec(file="encoder.onnx", name=info.name, pad_multiple=info.pad_multiple,
                                vectors_per_second=SAMPLE_RATE / (info.samples_per_frame * stack),
                                max_seconds=info.max_seconds, min_samples=min_samples),
            llm=LlmSpec(file="llm.gguf", name=llm_dir.name, width=weights.dims.d_llm, quantization=quant),
            prompt=DEFAULT_PROMPT,
            token_bound=DEFAULT_TOKEN_BOUND,
            provenance={"encoder": str(encoder_dir.resolve()), "projector": str(Path(projector_file).resolve()),
                        "llm": str(llm_dir.resolve()), "encoder_onnx_max_abs_diff": f"{drift:.2e}"},
        )
        write_manifest(work, manifest)
    return Path(out_dir)
