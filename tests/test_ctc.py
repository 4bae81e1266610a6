"""Joint CTC/LLM decoding: exact CTC prefix scores, the trained head as training computed it, better words."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ASTERISK_SOUNDS
from voxprompt.audio import load_audio
from voxprompt.ctc import CtcPrefixScorer
from voxprompt.decoding import generate
from voxprompt.models.evaluate import wer


def random_log_probs(t: int, c: int, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((t, c)) * 2
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("target", [[2], [2, 3, 1], [3, 3], [1, 2, 2, 2, 4]])
def test_the_whole_prefix_scores_what_ctc_loss_says(target):
    log_probs = random_log_probs(14, 5)
    scorer = CtcPrefixScorer.from_log_probs(log_probs, np.arange(5), weight=0.3, candidates=3, floor=-50)
    prefix = scorer.initial()
    prefix_scores = [prefix.psi]
    for cls in target:
        prefix = scorer.extend(prefix, np.array([cls, 1]))[0]  # several classes at once, each on its own
        prefix_scores.append(prefix.psi)
    expected = -F.ctc_loss(torch.tensor(log_probs)[:, None], torch.tensor([target]), torch.tensor([14]),
                           torch.tensor([len(target)]), blank=0, reduction="sum").item()
    assert scorer.end_score(prefix) == pytest.approx(expected, abs=1e-5)  # the frames are kept in float32
    # a prefix is at least as likely as any of its extensions, and as the exact transcript
    assert all(a >= b - 1e-12 for a, b in zip(prefix_scores, prefix_scores[1:]))
    assert prefix.psi >= scorer.end_score(prefix)


def test_score_bounds_and_the_prefix_score_are_never_below_an_extensions_and_rule_out_a_token_not_heard_near_the_prefix():
    log_probs = random_log_probs(40, 12, seed=3)
    log_probs[:, 11] = -30.0  # class 11 is heard on frames 30-32 only, far past the prefix
    log_probs[30:33, 11] = 0.0
    log_probs -= np.logaddexp.reduce(log_probs, axis=1, keepdims=True)
    scorer = CtcPrefixScorer.from_log_probs(log_probs, np.arange(12), weight=0.3, candidates=3, floor=-20)
    prefixes = [scorer.initial()]
    for cls in (2, 2, 5):  # a repeated class too
        prefixes.append(scorer.extend(prefixes[-1], np.array([cls]))[0])
    classes = np.arange(1, 12)
    for prefix in prefixes:
        exact = np.array([p.psi for p in scorer.extend(prefix, classes)])
        assert np.all(scorer.score_bounds(prefix, classes) >= exact - 1e-9)
        assert np.all(exact <= prefix.psi + 1e-9)  # no extension outscores its prefix: a bound too
    # "7" is heard on frames 0-1, then another word until frame 29: 11, heard on frames 30-32, cannot
    # follow "7" directly, and its best frame is where "7" no longer reaches
    heard = np.full((40, 12), -30.0)
    heard[:2, 7] = heard[2:30, 3] = heard[30:33, 11] = heard[33:, 0] = 0.0
    heard -= np.logaddexp.reduce(heard, axis=1, keepdims=True)
    scorer = CtcPrefixScorer.from_log_probs(heard, np.arange(12), weight=0.3, candidates=3, floor=-20)
    seven = scorer.extend(scorer.initial(), np.array([7]))[0]
    whole_segment = np.logaddexp.reduce(np.logaddexp(seven.r_n, seven.r_b)) + heard[:, 11].max()
    assert scorer.score_bounds(seven, np.array([11]))[0] < whole_segment - 10


def test_a_head_hears_nothing_only_when_the_blank_wins_every_frame():
    class_of = np.arange(6)
    quiet = np.log(np.full((8, 6), 0.02))
    quiet[:, 0] = np.log(0.9)
    assert CtcPrefixScorer.from_log_probs(quiet - np.logaddexp.reduce(quiet, axis=1, keepdims=True),
                                          class_of, 0.5, 8).hears_nothing
    one_token = quiet.copy()
    one_token[5, 3] = np.log(0.95)
    one_token -= np.logaddexp.reduce(one_token, axis=1, keepdims=True)
    assert not CtcPrefixScorer.from_log_probs(one_token, class_of, 0.5, 8).hears_nothing


def test_a_head_with_two_frames_per_vector_scores_as_training_does(tmp_path):
    """Few vectors per second need an upsampling CTC head: ctc.npz -> ONNX Runtime == training's CtcHead."""
    from voxprompt.ctc import CtcHead as RuntimeHead
    from voxprompt.models.ctc_head import CtcHeadWeights
    from voxprompt.models.train import CtcHead

    rng = np.random.default_rng(0)
    width, vocab = 16, 50
    embeddings = rng.standard_normal((vocab, width)).astype(np.float32)
    weights = CtcHeadWeights(rng.standard_normal(width).astype(np.float32), 0.7, np.array([3, 9, 11, 40], np.int32),
                             rng.standard_normal((2 * width, width)).astype(np.float32),
                             rng.standard_normal(2 * width).astype(np.float32))
    weights.save(tmp_path / "head.npz")
    assert CtcHeadWeights.load(tmp_path / "head.npz").upsample == 2
    weights.write_runtime(embeddings, tmp_path / "ctc.npz")
    speech = rng.standard_normal((7, width)).astype(np.float32)
    ours = RuntimeHead(tmp_path / "ctc.npz", vocab).log_probs(speech)
    with torch.no_grad():
        head = CtcHead.from_weights(weights, torch.from_numpy(embeddings))
        theirs = F.log_softmax(head(torch.from_numpy(speech)), dim=-1).numpy()
    assert ours.shape == theirs.shape == (14, 5)
    assert np.abs(ours - theirs).max() < 0.02  # float16 classes in ctc.npz


def test_a_head_given_more_tokens_scores_them_as_if_trained_with_them_and_keeps_its_own(tmp_path):
    """A context's or an adapter's words become classes at run time: the same rows a head trained with
    them would have, the trained classes unchanged, a token it already has not added twice."""
    from voxprompt.ctc import CtcHead as RuntimeHead
    from voxprompt.models.ctc_head import CtcHeadWeights

    rng = np.random.default_rng(1)
    width, vocab = 16, 50
    embeddings = rng.standard_normal((vocab, width)).astype(np.float32)
    blank = rng.standard_normal(width).astype(np.float32)
    CtcHeadWeights(blank, 0.7, np.array([3, 9, 11], np.int32)).write_runtime(embeddings, tmp_path / "ctc.npz")
    CtcHeadWeights(blank, 0.7, np.array([3, 9, 11, 20, 41], np.int32)).write_runtime(embeddings, tmp_path / "wide.npz")
    np.save(tmp_path / "rows.npy", embeddings.astype(np.float16))
    speech = rng.standard_normal((6, width)).astype(np.float32)
    head = RuntimeHead(tmp_path / "ctc.npz", vocab, token_rows=tmp_path / "rows.npy", extra_tokens=[41, 9, 20])
    wide = RuntimeHead(tmp_path / "wide.npz", vocab)
    assert head.n_classes == wide.n_classes == 6
    assert head.class_of[20] and head.class_of[41] and not head.class_of[5]
    ours, theirs = head.log_probs(speech), wide.log_probs(speech)
    columns = head.class_of[[3, 9, 11, 20, 41]]
    assert np.abs(ours[:, columns] - theirs[:, wide.class_of[[3, 9, 11, 20, 41]]]).max() < 1e-3
    plain = RuntimeHead(tmp_path / "ctc.npz", vocab, token_rows=tmp_path / "rows.npy")
    assert plain.n_classes == 4 and not plain.class_of[20]


def test_an_adapters_shift_turns_the_models_head_into_the_tuned_one_at_its_scale(tmp_path):
    """`voxprompt adapt` tunes the head; its adapter stores after - before (CtcShift): added to the model's
    head it gives the tuned head's posteriors, at scale 0 the model's own, at 0.5 something in between."""
    from voxprompt.ctc import CtcHead as RuntimeHead, CtcShift
    from voxprompt.models.ctc_head import CtcHeadWeights

    rng = np.random.default_rng(2)
    width, vocab, ids = 16, 50, np.array([3, 9, 11, 40], np.int32)
    embeddings = rng.standard_normal((vocab, width)).astype(np.float32)
    parts = lambda: (rng.standard_normal(width).astype(np.float32), float(rng.uniform(0.5, 1)), ids,  # noqa: E731
                     rng.standard_normal((2 * width, width)).astype(np.float32),
                     rng.standard_normal(2 * width).astype(np.float32))
    before, after = CtcHeadWeights(*parts()), CtcHeadWeights(*parts())
    before.write_runtime(embeddings, tmp_path / "model.npz")
    after.write_runtime(embeddings, tmp_path / "tuned.npz")
    CtcShift.between(before, after).save(tmp_path / "adapter-ctc.npz")
    shift = CtcShift.load(tmp_path / "adapter-ctc.npz")
    speech = rng.standard_normal((5, width)).astype(np.float32)
    tuned = RuntimeHead(tmp_path / "tuned.npz", vocab).log_probs(speech)
    own = RuntimeHead(tmp_path / "model.npz", vocab).log_probs(speech)
    shifted = RuntimeHead(tmp_path / "model.npz", vocab, shifts=[(shift, 1.0)]).log_probs(speech)
    assert np.abs(shifted - tuned).max() < 0.05  # float16 classes and upsampling weights on disk
    assert np.abs(own - tuned).max() > 1.0  # so that the line above tells them apart
    off = RuntimeHead(tmp_path / "model.npz", vocab, shifts=[(shift, 0.0)]).log_probs(speech)
    np.testing.assert_array_equal(off, own)
    half = RuntimeHead(tmp_path / "model.npz", vocab, shifts=[(shift, 0.5)]).log_probs(speech)
    assert 0 < np.abs(half - own).max() < np.abs(tuned - own).max()


def test_the_words_to_spell_become_every_token_the_llm_writes_them_with(transcriber):
    from voxprompt.ctc import spelling_tokens

    tokenize = transcriber.llm.tokenize
    tokens = spelling_tokens(tokenize, "apixaban, Xarelto and INR")
    for form in (" apixaban", "Apixaban", " Xarelto", " INR", " and"):
        assert set(tokenize(form)) <= tokens
    assert spelling_tokens(tokenize, " , ;") == set()


def test_a_context_lets_decoding_propose_its_words_tokens(transcriber):
    """The trained head only has its training text's tokens; a context's new words get classes, so a
    transcript can spell them (without, decoding never proposes them)."""
    from voxprompt.transcriber import Transcriber

    terms = ("pyelonephritis", "phenylbutyrate", "osteotribe", "leukogram", "geniculatus")
    lacking = [t for t in terms if not all(transcriber.ctc.class_of[i] for i in transcriber.llm.tokenize(" " + t))]
    assert lacking, "the trained head spells all of these terms: pick rarer ones"
    word = " " + lacking[0]
    with_context = Transcriber(transcriber.model_dir, llm_options=transcriber.llm.options, context=", ".join(terms))
    try:
        assert all(with_context.ctc.class_of[t] for t in with_context.llm.tokenize(word))
        assert with_context.ctc.n_classes > transcriber.ctc.n_classes
    finally:
        with_context.close()


def test_runtime_head_gives_the_training_posteriors(transcriber, recording_audio):
    """ctc.npz built without torch (rows from the GGUF) and scored in ONNX Runtime == training's CtcHead."""
    from voxprompt.export.default_model import DEFAULT_ENCODER, trained_ctc_path
    from voxprompt.models.ctc_head import CtcHeadWeights
    from voxprompt.models.train import CtcHead, load_llm

    weights = CtcHeadWeights.load(trained_ctc_path(DEFAULT_ENCODER))
    llm, _ = load_llm("cpu")
    head = CtcHead.from_weights(weights, llm.get_input_embeddings().weight)
    speech = transcriber.encoder(recording_audio)
    with torch.no_grad():
        theirs = F.log_softmax(head(torch.from_numpy(speech)), dim=-1).numpy()
    ours = transcriber.ctc.log_probs(speech)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 0.05  # float16 rows in ctc.npz
    assert (ours.argmax(1) == theirs.argmax(1)).mean() > 0.98


def test_ctc_scoring_lowers_word_errors_on_unseen_real_prompts(transcriber, asterisk_transcripts):
    from voxprompt.models.dataset import is_real_dev

    names = sorted(n for n in asterisk_transcripts if is_real_dev(ASTERISK_SOUNDS / f"{n}.wav")
                   and (ASTERISK_SOUNDS / f"{n}.wav").exists() and len(asterisk_transcripts[n].split()) >= 4)[:24]
    assert len(names) >= 20
    refs, llm_alone, joint = [], [], []
    for name in names:
        speech = transcriber.encoder(load_audio(ASTERISK_SOUNDS / f"{name}.wav"))
        bound = transcriber.manifest.token_bound(len(speech) / transcriber.manifest.encoder.vectors_per_second)
        refs.append(asterisk_transcripts[name])
        llm_alone.append(transcriber.llm.detokenize([p.token for p in generate(transcriber.llm, speech, bound)]))
        joint_tokens = generate(transcriber.llm, speech, bound, transcriber.scorer(speech))
        joint.append(transcriber.llm.detokenize([p.token for p in joint_tokens]))
    assert wer(refs, joint) < 0.5 * wer(refs, llm_alone)
