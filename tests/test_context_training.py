"""Training prompts with a context: the utterance's rarer words among distractors, sometimes none of them."""
import random

import torch

from voxprompt.models.context import rare_words, training_context


def test_rare_words_are_long_words_and_names_as_written():
    assert rare_words("Doctor Miller gave apixaban to Anna after the surgery, and the surgery went well.") == [
        "Doctor", "Miller", "apixaban", "Anna", "surgery"]
    assert rare_words("it is what it is") == []


def test_a_context_never_offers_a_distractor_the_speaker_said_and_sometimes_offers_none_of_its_words():
    text = "Doctor Miller gave apixaban to Anna."
    pool = ["warfarin", "Boston", "Anna", "infusion", "cardiology", "Priya", "apixaban", "tablet", "fracture"]
    rng = random.Random(0)
    contexts = [training_context(text, pool, rng).split(", ") for _ in range(400)]
    own = set(rare_words(text))
    relevant = [c for c in contexts if own & set(c)]
    assert 0.7 < len(relevant) / len(contexts) < 0.9  # p_relevant = 0.8
    for words in contexts:
        assert 2 <= len(set(words) - own) <= 8 and len(set(words) & own) <= 3


def test_a_prompt_with_a_context_keeps_the_loss_on_the_transcript_only():
    from voxprompt.models.train import Example, Stage2Batch

    class Embeddings(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Embedding(100, 4)

        def get_input_embeddings(self):
            return self.table

    ids = {"prefix": [1, 2, 3], "suffix": [4, 5], "end": [6]}
    batch = [Example(None, [10, 11], "a b", "x"), Example(None, [12], "c", "y")]
    speech, lengths = torch.zeros(2, 5, 4), torch.tensor([5, 3])
    b = Stage2Batch(Embeddings(), ids, speech, lengths, batch, "cpu", prefixes=[None, [1, 7, 8, 9, 2, 3]])
    assert b.mask.sum(1).tolist() == [3 + 5 + 2 + 3, 6 + 3 + 2 + 2]
    assert b.labels[0].tolist()[10:13] == [10, 11, 6] and b.labels[1].tolist()[11:13] == [12, 6]
    assert (b.labels[1, :11] == -100).all()


def test_the_loss_scores_only_transcript_positions_and_equals_the_full_vocabulary_loss():
    """lm_loss runs the output layer only where a label is; the loss must be the one over all logits."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from voxprompt.models.train import Example, Stage2Batch, lm_loss

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    ids = {"prefix": [1, 2, 3], "suffix": [4, 5], "end": [6]}
    batch = [Example(None, [10, 11, 12], "a b c", "x"), Example(None, [13], "d", "y")]
    speech, lengths = torch.randn(2, 5, 16, requires_grad=True), torch.tensor([5, 2])
    b = Stage2Batch(model, ids, speech, lengths, batch, "cpu")
    logits = model(inputs_embeds=b.embeds, attention_mask=b.mask).logits
    full = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), b.labels[:, 1:].flatten(), ignore_index=-100)
    loss = lm_loss(model, b)
    assert torch.allclose(loss, full, atol=1e-5)
    loss.backward()  # the speech vectors (the projector) and the LoRA weights still learn from it
    assert speech.grad[0].abs().sum() > 0 and speech.grad[1, :2].abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_coined_sentences_replace_words_keeping_punctuation_and_name_what_they_replaced():
    from voxprompt.models.corpus import coined_texts

    pairs = coined_texts(40, seed=3)
    assert len(pairs) == 40
    for text, coined in pairs:
        assert 1 <= len(coined) <= 2
        words = text.split(" ")
        for word in coined:
            assert 6 <= len(word) <= 12
            assert any(w.rstrip(",.;:!?\"") == word for w in words[1:])  # never the first word, punctuation kept
    assert len({w for _, c in pairs for w in c}) > 45  # coined afresh, not a small list repeated


def test_a_coined_clip_names_its_words_in_its_source_and_its_context_lists_them_most_of_the_time():
    from voxprompt.models.context import coined_context, coined_source, coined_words

    source = coined_source("espeak:en-us+m3", ("Vuroton", "zeapremine"))
    assert coined_words(source) == ["Vuroton", "zeapremine"]
    assert coined_words("espeak:en-us+m3") == [] and coined_words("real:tt-weasels") == []
    pool = ["Giquuxol", "vonbrocoul", "Troscerium", "zeapremine", "shustorex", "Voubrait", "hygreine"]
    rng = random.Random(1)
    contexts = [coined_context(["Vuroton", "zeapremine"], pool, rng).split(", ") for _ in range(300)]
    with_words = [c for c in contexts if {"Vuroton", "zeapremine"} <= set(c)]
    assert 0.8 < len(with_words) / len(contexts) < 0.97  # P_COINED_CONTEXT = 0.9
    assert all(2 <= len(set(c) - {"Vuroton", "zeapremine"}) <= 8 for c in contexts)
    # without its words, a context is distractors only: never one of the clip's words alone
    assert all(("Vuroton" in c) == ("zeapremine" in c) for c in contexts)


def test_token_noise_changes_what_the_llm_reads_never_what_it_must_predict():
    from voxprompt.models.train import Example, Stage2Batch, TokenNoise

    table = torch.nn.Embedding(100, 4)

    class Embeddings(torch.nn.Module):
        def get_input_embeddings(self):
            return table

    ids = {"prefix": [1, 2], "suffix": [3], "end": [6]}
    tokens = list(range(10, 40))
    batch = [Example(None, tokens, "t", "x")]
    speech, lengths = torch.zeros(1, 2, 4), torch.tensor([2])
    noise = TokenNoise(0.3, [90, 91], random.Random(0))
    clean = Stage2Batch(Embeddings(), ids, speech, lengths, batch, "cpu")
    noisy = Stage2Batch(Embeddings(), ids, speech, lengths, batch, "cpu", noise=noise)
    assert noisy.labels.tolist() == clean.labels.tolist()  # the targets are the true transcript
    text = slice(2 + 2 + 1, None)
    changed = (noisy.embeds[0, text] != clean.embeds[0, text]).any(-1)
    assert 3 <= int(changed.sum()) <= 18  # about 30 % of 31 inputs
    allowed = table(torch.tensor([90, 91]))
    for row in noisy.embeds[0, text][changed]:
        assert any(torch.equal(row, a) for a in allowed)  # replaced by a token of the given vocabulary
    assert torch.equal(noisy.embeds[0, :5], clean.embeds[0, :5])  # the prompt and speech untouched
