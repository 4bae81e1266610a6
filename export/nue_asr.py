"""`voxprompt export nue-asr CHECKPOINT --out DIR`: the authors' layout -> encoder.onnx + llm.gguf + manifest.

HuBERT and the bridge become one encoder.onnx on raw 16 kHz PCM; GPT-NeoX becomes GGUF with its
SentencePiece vocabulary (special ids kept, checked in llama.cpp), quantised by llama.cpp; the manifest
carries the authors' prompt (`<s>` speech `[SEP]`) and token bound (4 per second + 20).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from voxprompt.audio import SAMPLE_RATE
from voxprompt.export.gguf_llm import QUANTIZATIONS, finish_f16
from voxprompt.export.model_dir import building
from voxprompt.export.onnx_torch import export_torch_encoder, min_input_samples
from voxprompt.manifest import EncoderSpec, LlmSpec, Manifest, ModelError, PromptTemplate, write_manifest

# The tokenizer's special tokens as rinna's T5Tokenizer names them; special_tokens_map.json may rename them.
SPECIAL_DEFAULTS = {"bos": "<s>", "eos": "</s>", "sep": "[SEP]", "unk": "<unk>", "pad": "[PAD]"}


def special_token_ids(checkpoint: Path) -> dict[str, int]:
    """{role: id} for the special tokens, from spiece.model (and special_tokens_map.json when present)."""
    import sentencepiece

    from voxprompt.models.nue_asr import TOKENIZER_FILE

    names = dict(SPECIAL_DEFAULTS)
    mapping = checkpoint / "special_tokens_map.json"
    if mapping.exists():
        for role, value in json.loads(mapping.read_text()).items():
            role = role.removesuffix("_token")
            if role in names:
                names[role] = value["content"] if isinstance(value, dict) else value
    sp = sentencepiece.SentencePieceProcessor(model_file=str(checkpoint / TOKENIZER_FILE))
    ids = {}
    for role, piece in names.items():
        token_id = sp.piece_to_id(piece)
        if sp.id_to_piece(token_id) == piece:
            ids[role] = token_id
        elif role in ("bos", "eos", "sep"):  # the prompt and the end of decoding need these
            raise ModelError(f"{checkpoint / TOKENIZER_FILE}: no {piece!r} piece; the speech prompt needs "
                             f"{names['bos']!r}, {names['sep']!r} and {names['eos']!r}")
    return ids


def _hubert_conv_layers(config) -> list[tuple[int, int]]:
    return list(zip(config.conv_kernel, config.conv_stride))


def export_nue_asr(checkpoint: str | Path, out_dir: str | Path, quant: str = "q8_0", log=print) -> Path:
    from voxprompt.export.gguf_neox import write_gptneox_gguf
    from voxprompt.models.nue_asr import MAX_SECONDS, TOKEN_BOUND, TOKENIZER_FILE, NueAsr

    if quant not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quant!r}: choose one of {', '.join(QUANTIZATIONS)}")
    checkpoint = Path(checkpoint)
    log(f"reading the Nue-ASR checkpoint in {checkpoint}")
    model = NueAsr.from_checkpoint(checkpoint)
    specials = special_token_ids(checkpoint)
    hubert = model.audio_encoder.config
    layers = _hubert_conv_layers(hubert) + list(zip(model.layout.kernel_sizes, model.layout.strides))
    samples_per_vector = math.prod(stride for _, stride in layers)
    with building(out_dir) as work:
        log("writing encoder.onnx (HuBERT + bridge)")
        drift = export_torch_encoder(model.encoder, work / "encoder.onnx")
        log(f"encoder.onnx matches PyTorch to {drift:.1e}")
        log("writing the GPT-NeoX LLM as GGUF (f16) with its SentencePiece vocabulary")
        f16 = work / "llm-f16.gguf"
        write_gptneox_gguf(model.llm, checkpoint / TOKENIZER_FILE, specials, f16, name=checkpoint.name)
        finish_f16(f16, work / "llm.gguf", quant, log)
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_file=str(checkpoint / TOKENIZER_FILE))
        manifest = Manifest(
            encoder=EncoderSpec(file="encoder.onnx", name="nue-asr-hubert", pad_multiple=1,
                                vectors_per_second=SAMPLE_RATE / samples_per_vector, max_seconds=MAX_SECONDS,
                                min_samples=min_input_samples(layers)),
            llm=LlmSpec(file="llm.gguf", name=f"{checkpoint.name} (GPT-NeoX)",
                        width=model.llm.config.hidden_size, quantization=quant),
            prompt=PromptTemplate(prefix=sp.id_to_piece(specials["bos"]), suffix=sp.id_to_piece(specials["sep"]),
                                  stop=(sp.id_to_piece(specials["eos"]),)),
            token_bound=TOKEN_BOUND,
            provenance={"source": str(checkpoint.resolve()), "layout": "nue_asr (HuBERT + bridge + GPT-NeoX)",
                        "encoder_onnx_max_abs_diff": f"{drift:.2e}"},
        )
        write_manifest(work, manifest)
    return Path(out_dir)
