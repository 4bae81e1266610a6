"""SpecAugment on cached encoder frames (training only): what is hidden, and how much."""
import torch

from voxprompt.models.train import mask_frames


def frames_and_mask(time_mask: float, channel_mask: float, seed: int = 0):
    frames = torch.rand(16, 400, 384) + 1.0  # no frame is zero before masking
    masked = mask_frames(frames, time_mask, channel_mask, torch.Generator().manual_seed(seed))
    return frames, masked


def test_masked_values_are_zero_and_the_rest_untouched():
    frames, masked = frames_and_mask(0.2, 0.1)
    hidden = masked == 0
    assert hidden.any()
    assert torch.equal(masked[~hidden], frames[~hidden])


def test_about_the_asked_fraction_of_frames_is_hidden_in_spans():
    _, masked = frames_and_mask(0.2, 0.0)
    hidden_frames = (masked == 0).all(dim=-1)  # [b, t]
    assert 0.12 < hidden_frames.float().mean() < 0.25  # spans overlap, so a little under 0.2
    # spans, not scattered frames: most hidden frames have a hidden neighbour
    neighbour = hidden_frames[:, 1:] & hidden_frames[:, :-1]
    assert neighbour.sum() > 0.7 * hidden_frames.sum()


def test_one_band_of_channels_is_hidden_per_example():
    _, masked = frames_and_mask(0.0, 0.1)
    hidden_channels = (masked == 0).all(dim=1)  # [b, d]
    assert (hidden_channels.sum(dim=1) == int(0.1 * 384)).all()
    starts = hidden_channels.float().argmax(dim=1)
    assert len(set(starts.tolist())) > 1  # the band moves from example to example


def test_no_masking_leaves_the_frames_as_they_are():
    frames, masked = frames_and_mask(0.0, 0.0)
    assert torch.equal(frames, masked)
