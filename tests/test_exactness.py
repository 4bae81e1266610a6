"""The PyTorch reference and the exported ONNX + GGUF (f16) runtime give the same greedy tokens."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from voxprompt.models.speech_llm import Projector, PromptIds, SpeechEncoder, SpeechLLM
from voxprompt.models.whisper import WhisperEncoder
from voxprompt.models.whisper_dims import WhisperDims
from voxprompt.llm import LlmOptions
from voxprompt.manifest import load_manifest, write_manifest
from voxprompt.transcriber import Transcriber
from voxprompt.vad import SpeechSegment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def merged_f16_dir(tmp_path_factory) -> Path:
    """The default recipe at f16 with its LoRA adapter merged, as users run it (at q8_0), less its CTC head,
    so that greedy decoding is the LLM's alone, as PyTorch's is. (The projector without its adapter, on which
    it was never trained alone, hesitates on most tokens: too few clear choices to check.)"""
    from voxprompt.export.default_model import build_default_model

    model = build_default_model(tmp_path_factory.mktemp("models") / "f16-merged", quant="f16",
                                log=lambda *_: None, merge_adapter=True)
    write_manifest(model, replace(load_manifest(model), ctc=None))
    return model


@pytest.fixture(scope="module")
def runtime(merged_f16_dir):
    t = Transcriber(merged_f16_dir, llm_options=LlmOptions(beam_size=1, k_cache="f16"))  # the reference:
    # greedy, float keys (the default q8_0 K cache is measured on the dev sets, not held to a reference)
    yield t
    t.close()


@pytest.fixture(scope="module")
def reference(merged_f16_dir, default_ct2, runtime):
    from transformers import AutoModelForCausalLM

    from voxprompt.export.default_model import DEFAULT_ENCODER, default_projector

    llm = AutoModelForCausalLM.from_pretrained(str(merged_f16_dir), gguf_file="llm.gguf", dtype=torch.float32)
    dims = WhisperDims.from_ct2(default_ct2)
    projector, _ = default_projector(DEFAULT_ENCODER, dims.n_audio_state, llm.config.hidden_size)
    encoder = SpeechEncoder(WhisperEncoder(default_ct2, dims), Projector.from_weights(projector))
    rt = runtime.llm
    prompt = PromptIds(rt.prefix_ids, rt.suffix_ids, sorted(rt.stop_ids | {llm.config.eos_token_id}))
    return SpeechLLM(encoder, llm, prompt).eval()


TOLERANCE = 0.75  # logits (about 20 at the top): f16 LLM weights move them by tenths (the f16 build keeps
# the encoder's weights in float; its int8 build is measured on the dev sets)
MARGIN = 2 * TOLERANCE  # so a choice this clear cannot flip


def test_greedy_decoding_follows_pytorch_wherever_its_choice_is_clear(runtime, reference, recording_audio):
    """ONNX Runtime + llama.cpp (f16) against PyTorch (float32), teacher-forced along PyTorch's greedy
    transcript of a real recording: the logits agree, every clear choice is the same token, and the
    runtime's own greedy transcript is PyTorch's up to a near-tie (where rounding may pick either)."""
    segment = SpeechSegment(0, recording_audio)
    pcm = torch.from_numpy(runtime.encoder.pad(recording_audio))
    theirs = reference.greedy_decode(pcm, runtime.manifest.token_bound(segment.duration))
    assert len(theirs) >= 10
    with torch.no_grad():
        speech = reference.speech_encoder(pcm[None])[0]
        embeds = torch.cat([reference.prompt_embeddings(speech)[0], reference.embed_tokens(theirs)])[None]
        expected = reference.llm(inputs_embeds=embeds).logits[0, -len(theirs) - 1:].numpy()
    forced = runtime.llm.forced_logits(runtime.encoder(recording_audio), theirs)
    assert forced.shape == expected.shape
    top = np.argsort(expected, axis=1)[:, -10:]  # the tokens that matter: the reference's ten best
    assert np.abs(np.take_along_axis(forced - expected, top, axis=1)).max() < TOLERANCE
    best_two = np.sort(expected, axis=1)[:, -2:]
    clear = best_two[:, 1] - best_two[:, 0] > MARGIN
    assert clear.mean() > 0.5  # most of the transcript is checked token by token
    assert (forced.argmax(1)[clear] == expected.argmax(1)[clear]).all()
    ours = runtime.transcribe_segment(segment).tokens
    kept = cut_at_first_loop(theirs, runtime.llm.guard)  # the runtime's repetition guard, applied alike
    diverge = next((i for i, (a, b) in enumerate(zip(ours, kept)) if a != b), None)
    if diverge is None:
        assert len(ours) == len(kept) or not clear[min(len(ours), len(kept))]
    else:  # only where PyTorch itself hesitates may the two transcripts part
        assert not clear[diverge]


def cut_at_first_loop(tokens: list[int], guard) -> list[int]:
    """What a decoder with the repetition guard keeps of a free-running greedy sequence."""
    for k in range(1, len(tokens) + 1):
        start = guard.loop_start(tokens[:k])
        if start is not None:
            return tokens[:start]
    return tokens
