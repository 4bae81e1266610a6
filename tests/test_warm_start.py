"""Runs start from earlier ones (a projector restacked to more or fewer frames or moved to another encoder, a trained
model's committed files read back as a warm start) and choose what they train on (splits drawn more often)."""
import pytest
import torch

from voxprompt.models.projector import ProjectorDims
from voxprompt.models.speech_llm import Projector
from voxprompt.models.train import restacked_projector_state, transplanted_projector_state, widened_projector_state


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


def test_a_narrowed_projector_reads_each_window_as_the_old_one_read_it_slowed_down():
    torch.manual_seed(0)
    old = Projector(ProjectorDims(8, 12, 32, 8))
    for p in old.parameters():  # LayerNorm weights away from their ones/zeros start: they are folded into fc1
        p.data.normal_()
    new = Projector(ProjectorDims(4, 12, 32, 8))
    new.load_state_dict(restacked_projector_state(old.state_dict(), new.dims))
    frames = torch.randn(1, 12, 12)  # 3 windows of 4 frames
    slowed = frames.repeat_interleave(2, dim=1)  # every frame twice: 3 windows of 8
    with torch.no_grad():
        assert torch.allclose(new(frames), old(slowed), atol=1e-4)


def test_a_projector_is_not_narrowed_by_a_fraction():
    old = Projector(ProjectorDims(8, 12, 32, 8)).state_dict()
    with pytest.raises(SystemExit, match="cannot narrow"):
        restacked_projector_state(old, ProjectorDims(3, 12, 32, 8))  # 8 frames do not split into 3s


def test_a_projector_is_not_widened_by_a_fraction():
    old = Projector(ProjectorDims(4, 12, 32, 8)).state_dict()
    with pytest.raises(SystemExit, match="cannot widen"):
        widened_projector_state(old, 6 * 12)


def test_a_projector_moved_to_a_wider_encoder_keeps_only_its_output_layer():
    torch.manual_seed(0)
    old = Projector(ProjectorDims(8, 12, 32, 8))  # trained on a 12-wide encoder
    fresh = Projector(ProjectorDims(8, 16, 32, 8))  # this run's encoder is 16 wide
    new = Projector(ProjectorDims(8, 16, 32, 8))
    new.load_state_dict(transplanted_projector_state(old.state_dict(), fresh.state_dict()))
    assert torch.equal(new.fc2.weight, old.fc2.weight) and torch.equal(new.fc2.bias, old.fc2.bias)
    assert torch.equal(new.fc1.weight, fresh.fc1.weight) and torch.equal(new.norm.weight, fresh.norm.weight)


def test_a_projector_of_another_hidden_width_is_not_transplanted():
    old = Projector(ProjectorDims(8, 12, 32, 8)).state_dict()
    fresh = Projector(ProjectorDims(8, 16, 64, 8)).state_dict()
    with pytest.raises(SystemExit, match="--projector-hidden"):
        transplanted_projector_state(old, fresh)


def tiny_lora_model():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_alpha=8, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    with torch.no_grad():  # B starts at zero: a trained adapter has it non-zero, and its Q/K rows permuted
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    return model


def test_an_adapter_read_back_from_its_gguf_is_the_adapter_that_was_written(tmp_path):
    from voxprompt.models.train import export_lora_gguf, import_lora_gguf

    model = tiny_lora_model()
    export_lora_gguf(model, tmp_path / "lora.gguf", alpha=8)
    back = import_lora_gguf(tmp_path / "lora.gguf", n_head=4, n_kv=2)
    trained = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert set(back) == set(trained)
    for key, value in trained.items():
        assert torch.allclose(back[key], value.float(), atol=2e-3), key  # stored as float16


def test_a_trained_model_folder_warm_starts_a_run_with_its_projector_and_ctc_head(tmp_path):
    import numpy as np

    from voxprompt.models.ctc_head import CtcHeadWeights
    from voxprompt.models.projector import ProjectorWeights
    from voxprompt.models.train import export_lora_gguf, model_files_state

    ProjectorWeights.init(ProjectorDims(8, 12, 32, 32), seed=3).save(tmp_path / "projector-tiny.en.npz")
    rng = np.random.default_rng(0)
    head = CtcHeadWeights(rng.standard_normal(32).astype(np.float32), 0.7, np.arange(5, dtype=np.int32),
                          rng.standard_normal((64, 32)).astype(np.float32), rng.standard_normal(64).astype(np.float32))
    head.save(tmp_path / "ctc-tiny.en.npz")
    export_lora_gguf(tiny_lora_model(), tmp_path / "lora-tiny.en.gguf", alpha=8)
    state = model_files_state(tmp_path, "tiny.en", n_head=4, n_kv=2)
    projector = Projector(ProjectorDims(8, 12, 32, 32))
    projector.load_state_dict(state["projector"])
    saved = ProjectorWeights.load(tmp_path / "projector-tiny.en.npz")
    assert np.allclose(projector.to_weights().fc1_weight, saved.fc1_weight)
    assert torch.allclose(state["ctc"]["blank"], torch.from_numpy(head.blank))
    assert state["ctc"]["upsample.weight"].shape == (64, 32) and float(state["ctc"]["scale"]) == pytest.approx(0.7)
    assert any("lora_B" in k for k in state["lora"])


def test_a_run_continuing_a_model_keeps_every_token_its_ctc_head_could_hear(tmp_path):
    """A run on a smaller corpus must not narrow the head: a token it drops can no longer be CTC-scored."""
    import numpy as np

    from voxprompt.models.ctc_head import CtcHeadWeights
    from voxprompt.models.train import TrainConfig, inherited_ctc_vocab

    head = CtcHeadWeights(np.zeros(4, np.float32), 1.0, np.array([7, 300, 41], np.int32))
    head.save(tmp_path / "ctc-base.npz")
    assert inherited_ctc_vocab(TrainConfig(encoder="base", init_from=str(tmp_path))) == {7, 300, 41}
    # another encoder's head, or no model to continue: nothing inherited
    assert inherited_ctc_vocab(TrainConfig(encoder="tiny.en", init_from=str(tmp_path))) == set()
    assert inherited_ctc_vocab(TrainConfig(encoder="base", init_from=str(tmp_path), init_encoder="tiny.en")) == set()
    assert inherited_ctc_vocab(TrainConfig(encoder="base")) == set()


def test_a_split_can_be_drawn_more_often_and_a_bad_repeat_is_refused():
    from voxprompt.models.train import split_repeats

    assert split_repeats("train, train_nonspeech*8,") == [("train", 1), ("train_nonspeech", 8)]
    for bad in ("train*0", "train*x", "train*1.5"):
        with pytest.raises(SystemExit, match="whole number"):
            split_repeats(bad)
