"""The PyTorch reference and the exported ONNX + GGUF (f16) runtime give the same greedy tokens."""
import pytest
import torch

from voxprompt.models.speech_llm import Projector, PromptIds, SpeechEncoder, SpeechLLM
from voxprompt.models.whisper import WhisperEncoder
from voxprompt.models.whisper_dims import WhisperDims
from voxprompt.llm import LlmOptions
from voxprompt.transcriber import Transcriber
from voxprompt.vad import SpeechSegment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime(f16_model_dir):
    t = Transcriber(f16_model_dir, llm_options=LlmOptions(beam_size=1, k_cache="f16"))  # the reference:
    # greedy, float keys (the default q8_0 K cache is measured on the dev sets, not held to a reference)
    yield t
    t.close()


@pytest.fixture(scope="module")
def reference(f16_model_dir, tiny_ct2, runtime):
    from transformers import AutoModelForCausalLM

    from voxprompt.export.default_model import default_projector

    llm = AutoModelForCausalLM.from_pretrained(str(f16_model_dir), gguf_file="llm.gguf", dtype=torch.float32)
    projector, _ = default_projector("tiny.en", 384, 576)
    encoder = SpeechEncoder(WhisperEncoder(tiny_ct2, WhisperDims.from_ct2(tiny_ct2)), Projector.from_weights(projector))
    rt = runtime.llm
    prompt = PromptIds(rt.prefix_ids, rt.suffix_ids, sorted(rt.stop_ids | {llm.config.eos_token_id}))
    return SpeechLLM(encoder, llm, prompt).eval()


def test_same_greedy_tokens_on_a_real_recording(runtime, reference, recording_audio):
    segment = SpeechSegment(0, recording_audio)
    max_new = runtime.manifest.token_bound(segment.duration)
    ours = runtime.transcribe_segment(segment).tokens
    theirs = reference.greedy_decode(torch.from_numpy(runtime.encoder.pad(recording_audio)), max_new)
    assert len(theirs) >= 10
    assert ours == cut_at_first_loop(theirs, runtime.llm.guard)  # the runtime's repetition guard, applied alike


def cut_at_first_loop(tokens: list[int], guard) -> list[int]:
    """What a decoder with the repetition guard keeps of a free-running greedy sequence."""
    for k in range(1, len(tokens) + 1):
        start = guard.loop_start(tokens[:k])
        if start is not None:
            return tokens[:start]
    return tokens
