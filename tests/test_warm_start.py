"""A run with fewer speech vectors per second starts from a trained projector that stacked fewer frames."""
import pytest
import torch

from voxprompt.models.projector import ProjectorDims
from voxprompt.models.speech_llm import Projector
from voxprompt.models.train import widened_projector_state


def test_a_widened_projector_reads_a_doubled_window_as_the_old_one_read_half_of_it():
    torch.manual_seed(0)
    old = Projector(ProjectorDims(4, 12, 32, 8))
    for p in old.parameters():  # LayerNorm weights away from their ones/zeros start, so their layout matters
        p.data.normal_()
    new = Projector(ProjectorDims(8, 12, 32, 8))
    new.load_state_dict(widened_projector_state(old.state_dict(), new.dims.d_in))
    groups = torch.randn(1, 3, 4, 12)  # 3 windows of 4 frames
    doubled = groups.repeat(1, 1, 2, 1).reshape(1, 24, 12)  # each window twice in a row: 3 windows of 8
    with torch.no_grad():
        assert torch.allclose(new(doubled), old(groups.reshape(1, 12, 12)), atol=1e-5)


def test_a_projector_is_not_widened_by_a_fraction():
    old = Projector(ProjectorDims(4, 12, 32, 8)).state_dict()
    with pytest.raises(SystemExit, match="cannot widen"):
        widened_projector_state(old, 6 * 12)
