"""`voxprompt adapt`: the user's text becomes spoken training material, and training becomes an adapter."""
import numpy as np
import pytest

from voxprompt.models.adapt import (CARRIERS, VOICES_PER_SENTENCE, AdaptPlan, carrier_sentences, favoured_terms, make_plan,
                                    read_sentences, read_terms, unknown_words)


def test_text_is_split_into_sentences_without_repeats_or_fragments(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("Start warfarin at five milligrams. Check the INR on Monday!\n\nOk.\n"
                    "start warfarin at five milligrams.\n" + "word " * 50 + "\n")
    assert read_sentences(text) == ["Start warfarin at five milligrams.", "Check the INR on Monday!"]


def test_terms_come_one_per_line_or_comma_separated_with_comments(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("apixaban, Xarelto\n# brand names\nwarfarin  # the old one\nXARELTO\n\n")
    assert read_terms(terms) == ["apixaban", "Xarelto", "warfarin"]


def test_only_terms_the_text_never_says_get_carrier_sentences():
    made = carrier_sentences(["warfarin", "apixaban"], ["Start warfarin today."], per_term=3, seed=0)
    assert len(made) == 3 and all("apixaban" in s.lower() for s in made)
    assert all(s[0].isupper() for s in made)
    assert all("iPhone" in s for s in carrier_sentences(["iPhone"], [], per_term=10, seed=0))
    assert len(set(made)) == 3 and len(CARRIERS) >= 3


def test_the_domain_terms_are_the_words_a_general_word_list_lacks():
    known = frozenset("start the five milligrams daily patient beta blocker needs a weekly test".split())
    sentences = ["Start apixaban five milligrams daily.", "The patient's apixaban-induced rash needs a weekly INR test.",
                 "Apixaban and a beta-blocker: 5 daily."]
    assert unknown_words(sentences, known) == ["apixaban", "apixaban-induced", "rash", "INR", "and"]


def test_given_terms_come_first_and_keep_their_spelling_then_the_texts_own():
    plan = AdaptPlan(["Start apixaban today.", "Give Xarelto with food."], [], ["xarelto", "Eliquis"], 5)
    assert favoured_terms(plan, log=lambda *_: None) == ("xarelto", "Eliquis", "apixaban")  # wamerican knows the rest


def test_the_plan_mixes_in_general_speech_and_says_what_it_will_do(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("apixaban\nrivaroxaban\n")
    plan = make_plan(None, terms, minutes=20)
    assert len(plan.domain) == 12  # six carriers per term without a text
    domain_utterances = len(plan.domain) * VOICES_PER_SENTENCE
    assert 0.25 <= len(plan.general) / (len(plan.general) + domain_utterances) <= 0.35
    assert not set(plan.general) & set(plan.domain)
    assert "12 domain sentences (2 terms)" in plan.describe()


def test_nothing_to_learn_from_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("Ok.\n")
    with pytest.raises(ValueError, match="no sentences"):
        make_plan(empty, None, minutes=20)


def test_what_training_changed_is_an_exact_adapter_on_top_of_the_merged_one(tmp_path):
    """lora_difference: applied on a model with `before` merged in, the adapter gives the `after` model."""
    from voxprompt.export.merge_lora import lora_difference, lora_writer, read_lora

    rng = np.random.default_rng(0)

    frozen_a, frozen_b = rng.standard_normal((4, 16)) * 0.1, rng.standard_normal((8, 4)) * 0.1

    def write(path, a, b, alpha=32.0):
        w = lora_writer(path, alpha)
        w.add_tensor("blk.0.attn_q.weight.lora_a", a.astype(np.float16))
        w.add_tensor("blk.0.attn_q.weight.lora_b", b.astype(np.float16))
        w.add_tensor("blk.0.ffn_up.weight.lora_a", frozen_a.astype(np.float16))  # not trained: the same after
        w.add_tensor("blk.0.ffn_up.weight.lora_b", frozen_b.astype(np.float16))
        w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()

    a0, b0 = rng.standard_normal((4, 16)) * 0.1, rng.standard_normal((8, 4)) * 0.1
    a1, b1 = a0 + rng.standard_normal((4, 16)) * 0.05, b0 + rng.standard_normal((8, 4)) * 0.05
    write(tmp_path / "before.gguf", a0, b0)
    write(tmp_path / "after.gguf", a1, b1)
    assert lora_difference(tmp_path / "before.gguf", tmp_path / "after.gguf", tmp_path / "delta.gguf") == 1
    alpha, factors = read_lora(tmp_path / "delta.gguf")
    assert set(factors) == {"blk.0.attn_q.weight"}  # a projection training left alone costs nothing at run time
    a, b = factors["blk.0.attn_q.weight"]["lora_a"], factors["blk.0.attn_q.weight"]["lora_b"]
    assert a.shape == (8, 16) and b.shape == (8, 8)  # twice the rank
    f16 = lambda x: x.astype(np.float16).astype(np.float64)
    expected = 32.0 / 4 * (f16(b1) @ f16(a1) - f16(b0) @ f16(a0))
    np.testing.assert_allclose(alpha / a.shape[0] * (b @ a), expected, atol=1e-5)


@pytest.mark.slow
def test_adapt_end_to_end_on_a_tiny_budget(tmp_path, default_model_dir):
    """Speak three sentences, train until a 4-minute budget ends, write an adapter llama.cpp applies."""
    from voxprompt.adapters import AdapterInfo, resolve_adapter
    from voxprompt.ctc import CtcShift
    from voxprompt.manifest import load_manifest
    from voxprompt.models.adapt import adapt
    from voxprompt.transcriber import Transcriber

    text = tmp_path / "domain.txt"
    text.write_text("Start apixaban five milligrams twice daily.\nStop the rivaroxaban before surgery.\n"
                    "Warfarin needs a weekly blood test.\n")
    manifest = load_manifest(default_model_dir, verify=False)
    folder = adapt("tiny", text, None, tmp_path / "adapters", manifest.adapter_base_id, minutes=4, log=lambda *_: None)
    info = AdapterInfo.read(folder)
    assert info.sentences == 3 and info.base_model_id == manifest.adapter_base_id and info.minutes > 0
    assert int(info.provenance["steps"]) >= 1  # the budget is kept (README: measured), at least one step is taken
    assert not (folder / "work").exists()  # the spoken shards and checkpoint are gone once it is made
    assert {"apixaban", "rivaroxaban", "Warfarin"} <= set(info.vocabulary)
    assert {"apixaban", "rivaroxaban"} <= set(info.terms) and "Start" not in info.terms
    choice = resolve_adapter(str(folder), manifest)
    shift = CtcShift.load(choice.ctc_shift)  # the CTC head learnt too (the projector did not)
    assert np.abs(shift.upsample_weight).max() > 0 and np.isfinite(shift.upsample_weight).all()
    t = Transcriber(default_model_dir, adapters=[choice])
    try:
        tokens = t.llm.tokenize("Start apixaban")
        adapted = t.llm.prompt_logits(tokens=tokens)
        # its words can be written: every token of them is a class of the CTC head while it is applied
        assert all(t.ctc.class_of[i] for i in t.llm.tokenize(" rivaroxaban") + t.llm.tokenize(" apixaban"))
        t.use_adapters(())
        assert np.abs(adapted - t.llm.prompt_logits(tokens=tokens)).max() > 1e-3  # training changed something
    finally:
        t.close()


@pytest.mark.parametrize("args, message", [
    (["--out", "med"], "give --text FILE"),
    (["--text", "/nonexistent.txt", "--out", "med"], "--text /nonexistent.txt: no such file"),
    (["--terms", __file__, "--out", "../med"], "an adapter's name is letters"),
    (["--terms", __file__, "--out", "med", "--layers", "-2"], "--layers -2: give how many"),
])
def test_adapt_refuses_bad_input_in_one_line(args, message, tmp_path, monkeypatch):
    from conftest import run_voxprompt

    monkeypatch.setenv("VOXPROMPT_ADAPTERS", str(tmp_path))
    result = run_voxprompt("adapt", *args, timeout=60)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_an_adapter_may_learn_only_some_projections_in_the_last_layers():
    """Each adapted projection costs llama.cpp graph nodes per token; these choose which learn."""
    from voxprompt.models.train import TrainConfig, lora_learns

    name = "base_model.model.model.layers.{}.self_attn.{}.lora_A.default.weight"
    everything = TrainConfig()
    assert all(lora_learns(name.format(i, "q_proj"), everything, 30) for i in range(30))
    last = TrainConfig(lora_layers=8, lora_trained=("q_proj", "v_proj"))
    assert [i for i in range(30) if lora_learns(name.format(i, "q_proj"), last, 30)] == list(range(22, 30))
    assert not lora_learns(name.format(29, "o_proj"), last, 30)
    assert not lora_learns(name.format(29, "k_proj"), last, 30)  # ".k_proj." is not ".q_proj."
