"""A LoRA adapter trained in PyTorch runs in llama.cpp as a GGUF adapter with the same effect."""
import numpy as np
import pytest
import torch

from voxprompt.llm import SpeechPromptLLM
from voxprompt.manifest import DEFAULT_PROMPT
from voxprompt.models.train import export_lora_gguf

pytestmark = pytest.mark.slow


def test_adapter_logits_match_pytorch(tmp_path, f16_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(f16_model_dir), gguf_file="llm.gguf", dtype=torch.float32)
    torch.manual_seed(0)  # peft draws lora_A at random
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                  "o_proj", "up_proj", "down_proj"]))
    with torch.no_grad():  # a trained-looking adapter: B is zero at init, which would prove nothing
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    export_lora_gguf(model, tmp_path / "adapter.gguf", alpha=16)

    plain = SpeechPromptLLM(f16_model_dir / "llm.gguf", DEFAULT_PROMPT)
    adapted = SpeechPromptLLM(f16_model_dir / "llm.gguf", DEFAULT_PROMPT, adapters=[(tmp_path / "adapter.gguf", 1.0)])
    ids = plain.tokenize("The quarterly numbers for March look better than expected.")
    ours = adapted.prompt_logits(tokens=ids)
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor([plain.prefix_ids + ids])).logits[0, -1].numpy()
    base_logits = plain.prompt_logits(tokens=ids)
    effect = np.abs(theirs - base_logits).max()
    assert effect > 1.0  # the adapter changes the model noticeably...
    assert np.abs(ours - theirs).max() < 0.1 * effect  # ...and llama.cpp applies the same change
    assert int(ours.argmax()) == int(theirs.argmax())


def test_merged_adapter_matches_the_adapter_applied_at_load(tmp_path):
    """Folding the trained adapter into the weights (f16, then q8_0) keeps its effect."""
    from voxprompt.export.default_model import DEFAULT_ENCODER, trained_adapter_path
    from voxprompt.export.gguf_llm import quantize_gguf
    from voxprompt.export.merge_lora import merge_lora
    from voxprompt.models.assets import smollm2_gguf

    adapter = trained_adapter_path(DEFAULT_ENCODER)
    if not adapter.exists():
        pytest.skip("no trained adapter committed")
    assert merge_lora(smollm2_gguf(), adapter, tmp_path / "merged-f16.gguf") > 0
    quantize_gguf(tmp_path / "merged-f16.gguf", tmp_path / "merged-q8_0.gguf", "q8_0")

    def logits(path, adapter_path=None):
        llm = SpeechPromptLLM(path, DEFAULT_PROMPT, adapters=[(adapter_path, 1.0)] if adapter_path else [])
        try:
            return llm.prompt_logits(tokens=llm.tokenize("Please leave your message after the tone."))
        finally:
            llm.close()

    base = logits(smollm2_gguf())
    at_load = logits(smollm2_gguf(), adapter)
    effect = np.abs(at_load - base).max()
    assert effect > 1.0
    for merged in (tmp_path / "merged-f16.gguf", tmp_path / "merged-q8_0.gguf"):
        got = logits(merged)
        assert np.abs(got - at_load).max() < 0.25 * effect
        assert int(got.argmax()) == int(at_load.argmax())
