"""The log-mel front end equals Whisper's, in numpy, in PyTorch and inside the exported graph."""
import numpy as np
import torch

from voxprompt.models.frontend import MAX_SAMPLES, PAD_MULTIPLE, log_mel, mel_filters, pad_waveform, padded_length


def test_mel_filters_match_transformers():
    from transformers.audio_utils import mel_filter_bank

    theirs = mel_filter_bank(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0, max_frequency=8000.0,
                             sampling_rate=16000, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(mel_filters(80), theirs.T, atol=1e-6)


def test_log_mel_matches_whisper_feature_extractor(recording_audio):
    from transformers import WhisperFeatureExtractor

    audio = np.pad(recording_audio, (0, MAX_SAMPLES - len(recording_audio)))
    theirs = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np").input_features[0]
    assert np.abs(log_mel(audio) - theirs).max() < 1e-4


def test_torch_front_end_matches_numpy(recording_audio):
    from voxprompt.models.whisper import LogMel

    audio = pad_waveform(recording_audio)
    ours = LogMel(80)(torch.from_numpy(audio)[None])[0].numpy()
    assert np.abs(ours - log_mel(audio)).max() < 1e-4


def test_padding_policy_is_whole_speech_vectors():
    assert padded_length(1) == PAD_MULTIPLE
    assert padded_length(PAD_MULTIPLE) == PAD_MULTIPLE
    assert padded_length(PAD_MULTIPLE + 1) == 2 * PAD_MULTIPLE
    assert len(pad_waveform(np.ones(3000, np.float32))) % PAD_MULTIPLE == 0
