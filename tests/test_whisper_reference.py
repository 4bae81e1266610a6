"""The rebuilt Whisper tiny.en, with its own decoder, transcribes exactly as faster-whisper does."""
import json

import numpy as np
import torch
from tokenizers import Tokenizer

from voxprompt.models.assets import whisper_asset
from voxprompt.models.frontend import MAX_SAMPLES, log_mel
from voxprompt.models.whisper import Whisper


def test_same_greedy_tokens_as_faster_whisper(tiny_ct2, recording_audio):
    from faster_whisper import WhisperModel

    asset = whisper_asset("tiny.en")
    tokenizer = Tokenizer.from_file(str(asset.tokenizer_json))
    suppress = json.loads(asset.config_json.read_text())["suppress_ids"]
    prompt = [tokenizer.token_to_id("<|startoftranscript|>"), tokenizer.token_to_id("<|notimestamps|>")]
    eot = tokenizer.token_to_id("<|endoftext|>")

    model = Whisper(tiny_ct2).eval()
    mel = log_mel(np.pad(recording_audio, (0, MAX_SAMPLES - len(recording_audio))))
    ours = model.greedy_decode(torch.from_numpy(mel)[None], prompt, eot, suppress)

    reference = WhisperModel(str(asset.model_bin.parent), device="cpu", compute_type="float32")
    segments, _ = reference.transcribe(recording_audio, beam_size=1, temperature=0.0, without_timestamps=True,
                                       condition_on_previous_text=False)
    theirs = [t for s in segments for t in s.tokens]
    assert ours == theirs
    assert "message" in tokenizer.decode(ours).lower()
