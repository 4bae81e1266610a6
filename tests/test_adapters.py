"""Domain adapters and context: applied at load by llama.cpp, switched live, refused for another model."""
import json

import numpy as np
import pytest

from conftest import run_voxprompt
from voxprompt.adapters import AdapterInfo, parse_adapter_spec, resolve_adapter
from voxprompt.manifest import DEFAULT_PROMPT, ModelError, load_manifest


@pytest.fixture(scope="module")
def manifest(default_model_dir):
    return load_manifest(default_model_dir, verify=False)


@pytest.fixture()
def installed(adapters_home, monkeypatch):
    monkeypatch.setenv("VOXPROMPT_ADAPTERS", str(adapters_home))
    return adapters_home


@pytest.fixture(scope="module")
def loaded(default_model_dir, adapters_home):
    """One model with both adapters at hand (as the dictation app holds them)."""
    from voxprompt.transcriber import Transcriber

    t = Transcriber(default_model_dir, adapters=[str(adapters_home / "again"), str(adapters_home / "nothing")])
    yield t
    t.close()


def _logits(t, text="The patient was given"):
    return t.llm.prompt_logits(tokens=t.llm.tokenize(text))


def test_adapter_names_take_an_optional_scale():
    assert parse_adapter_spec("medical") == ("medical", 1.0)
    assert parse_adapter_spec("medical:0.5") == ("medical", 0.5)
    assert parse_adapter_spec("/tmp/a:b/medical") == ("/tmp/a:b/medical", 1.0)  # a colon inside a path
    with pytest.raises(ModelError, match="between 0 and 4"):
        parse_adapter_spec("medical:9")


def test_an_adapter_for_another_model_is_refused_in_one_line(installed, manifest, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "adapter.gguf").write_bytes((installed / "again" / "adapter.gguf").read_bytes())
    AdapterInfo("other", "0123456789abcdef").write(other)
    with pytest.raises(ModelError, match="made for model 0123456789abcdef") as caught:
        resolve_adapter(str(other), manifest)
    assert "\n" not in str(caught.value) and "voxprompt adapt" in str(caught.value)
    with pytest.raises(ModelError, match=r"no such adapter \(installed: again, nothing\)"):
        resolve_adapter("cardiology", manifest)


def test_an_adapter_changes_the_llm_and_switching_it_off_restores_the_model(loaded):
    both = loaded.adapters
    with_both = _logits(loaded)
    loaded.use_adapters(())
    plain = _logits(loaded)
    loaded.use_adapters(both[1:])  # `nothing` alone
    nothing = _logits(loaded)
    loaded.use_adapters(both)
    assert np.abs(with_both - plain).max() > 1.0  # the LoRA again: a real change
    assert np.abs(nothing - plain).max() < 1e-2  # a zero change: the same model
    np.testing.assert_allclose(_logits(loaded), with_both, atol=1e-4)  # and back, without reloading


def test_an_adapters_terms_are_favoured_in_the_search_while_it_is_applied(default_model_dir, adapters_home, tmp_path):
    import shutil

    from voxprompt.adapters import ADAPTER_FILE
    from voxprompt.biasing import ROOT
    from voxprompt.transcriber import Transcriber

    folder = tmp_path / "pharmacy"
    folder.mkdir()
    shutil.copy(adapters_home / "nothing" / ADAPTER_FILE, folder / ADAPTER_FILE)
    base_id = load_manifest(default_model_dir, verify=False).adapter_base_id
    AdapterInfo("pharmacy", base_id, terms=("Xarelto", "apixaban")).write(folder)
    t = Transcriber(default_model_dir, context="Eliquis", adapters=[str(folder)])
    try:
        first = lambda word: {t.llm.tokenize(word)[0], t.llm.tokenize(" " + word)[0]}
        proposed = set(t.bias.next_tokens(ROOT, at_start=True))
        assert first("Xarelto") | first("Apixaban") | first("Eliquis") <= proposed
        t.use_adapters(())
        assert set(t.bias.next_tokens(ROOT, at_start=True)) == first("Eliquis")  # the context's word stays
        t.use_adapters([resolve_adapter(str(folder), t.manifest)])
        assert first("Xarelto") <= set(t.bias.next_tokens(ROOT, at_start=True))
    finally:
        t.close()


def test_files_fold_adapters_into_cached_weights_with_the_effect_of_applying_them(default_model_dir, installed, loaded,
                                                                                tmp_path, monkeypatch):
    from voxprompt.adapters import folded_dir
    from voxprompt.transcriber import Transcriber

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    both = loaded.adapters
    try:
        loaded.use_adapters(())
        plain = _logits(loaded)
        loaded.use_adapters(both[:1])  # `again`, applied at load
        at_load = _logits(loaded)
    finally:
        loaded.use_adapters(both)
    said = []
    for attempt in range(2):
        t = Transcriber(default_model_dir, adapters=["again"], fold_adapters=True, log=said.append)
        try:
            assert t.llm.path.parent == folded_dir() and not t.llm.applied_adapters
            folded = _logits(t)
            with pytest.raises(ValueError, match="folded"):
                t.use_adapters(())
        finally:
            t.close()
    assert len(said) == 1 and "folding" in said[0]  # built once, then read from the cache
    effect = np.abs(at_load - plain).max()
    assert effect > 1.0
    assert np.abs(folded - at_load).max() < 0.25 * effect  # q8_0 again where it changed: rounding, not the effect
    assert int(folded.argmax()) == int(at_load.argmax())


def test_a_fold_that_cannot_be_written_is_one_line_that_says_what_to_do(default_model_dir, installed, tmp_path,
                                                                      monkeypatch):
    from voxprompt.adapters import folded_llm

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(ModelError, match="cannot write a folded LLM") as caught:
        folded_llm(default_model_dir / "llm.gguf", [(installed / "again" / "adapter.gguf", 1.0)])
    assert "\n" not in str(caught.value) and "--adapters-at-load" in str(caught.value)


def test_scale_zero_is_the_model_without_the_adapter(default_model_dir, installed):
    from voxprompt.transcriber import Transcriber

    t = Transcriber(default_model_dir, adapters=["again:0"])
    try:
        off = _logits(t)
        t.use_adapters(())
        np.testing.assert_allclose(off, _logits(t), atol=1e-4)
    finally:
        t.close()


def test_a_context_goes_into_the_prompt_before_the_speech(default_model_dir, transcriber):
    from voxprompt.transcriber import Transcriber

    many = ", ".join(f"term{i}" for i in range(100))  # a long list: hundreds of tokens
    t = Transcriber(default_model_dir, context=f"  Xarelto,\n  Zyrtec, {many} ")
    try:
        assert t.llm.prefix_ids == t.llm.tokenize(DEFAULT_PROMPT.prefix_for(f"Xarelto, Zyrtec, {many}"))
        assert "Transcribe the speech. Context: Xarelto, Zyrtec, term0" in t.llm.detokenize(t.llm.prefix_ids)
        # every seat still has room for the longest segment's vectors and tokens after the context
        longest = t.cells_per_segment()
        assert t.llm.capacity() - len(t.llm.suffix_ids) >= longest > 0
    finally:
        t.close()
    assert DEFAULT_PROMPT.prefix_for("") == DEFAULT_PROMPT.prefix  # no context: the prompt it was trained on


def test_a_model_without_a_place_for_context_refuses_one(default_model_dir, tmp_path):
    import shutil

    from voxprompt.transcriber import Transcriber

    copy = tmp_path / "model"
    shutil.copytree(default_model_dir, copy)
    raw = json.loads((copy / "manifest.json").read_text())
    raw["prompt"]["context_prefix"] = ""
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="no place for a context"):
        Transcriber(copy, context="cardiology")


def test_cli_refuses_a_context_too_long_before_loading_the_model(recording):
    result = run_voxprompt("transcribe", recording, "--context", "word " * 300, "--model", "/nonexistent", timeout=60)
    assert result.returncode == 2
    assert "at most 1000" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_transcribe_with_adapters_and_hotwords_records_them_for_resumption(installed, recording, tmp_path):
    out = tmp_path / "out"
    plain = run_voxprompt("transcribe", recording, "--format", "json", "--output-dir", out, "--hotwords", "message, tone")
    assert plain.returncode == 0, plain.stderr
    baseline = json.loads((out / "vm-intro.json").read_text())
    adapted = run_voxprompt("transcribe", recording, "--format", "json", "--output-dir", out,
                            "--adapter", "nothing", "--adapter", "again:0", "--hotwords", "message, tone")
    assert adapted.returncode == 0, adapted.stderr
    result = json.loads((out / "vm-intro.json").read_text())
    assert result["run"]["adapters"] == ["nothing", "again:0"]
    assert result["run"]["context"] == "message, tone"
    assert result["text"] == baseline["text"] != ""  # a zero change and a zero scale: the same transcript
    assert baseline["run"]["adapters"] == []  # so the second run was not skipped as done


def test_adapters_lists_what_is_installed(installed):
    result = run_voxprompt("adapters")  # VOXPROMPT_ADAPTERS names the folder
    assert result.returncode == 0
    assert "again:" in result.stdout and "nothing:" in result.stdout and "(for the default model)" in result.stdout
