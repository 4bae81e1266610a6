"""A model directory is checked against its manifest before anything runs."""
import json
import shutil

import pytest
from voxprompt.export.default_model import DEFAULT_ENCODER, default_projector
from voxprompt.manifest import FORMAT_VERSION, ModelError, load_manifest
from voxprompt.transcriber import Transcriber


@pytest.fixture
def model_copy(tmp_path, f16_model_dir):
    """A private copy (files hard-linked where possible: they are only read or replaced)."""
    target = tmp_path / "model"
    shutil.copytree(f16_model_dir, target, copy_function=shutil.copy)
    return target


def edit_manifest(directory, change):
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_manifest_describes_the_model(f16_model_dir):
    m = load_manifest(f16_model_dir)
    assert m.format_version == FORMAT_VERSION and m.sample_rate == 16000
    projector, _ = default_projector(DEFAULT_ENCODER, 384, 576)  # its stack sets the rate: 50 encoder frames per second
    assert m.encoder.vectors_per_second == 50 / projector.dims.stack
    assert m.llm.width == 576 and m.llm.quantization == "f16"
    assert set(m.sha256) == {"encoder.onnx", "llm.gguf"}
    assert "Whisper" in m.provenance["encoder"]


def test_other_format_version_is_refused(model_copy):
    edit_manifest(model_copy, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelError, match="format version"):
        load_manifest(model_copy)


def test_modified_file_fails_its_hash(model_copy):
    with open(model_copy / "encoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        load_manifest(model_copy)


def test_missing_file_is_named(model_copy):
    (model_copy / "llm.gguf").unlink()
    with pytest.raises(ModelError, match="llm.gguf is missing"):
        load_manifest(model_copy)


def test_width_mismatch_is_a_clear_error(model_copy):
    edit_manifest(model_copy, lambda d: d["llm"].update(width=768))
    with pytest.raises(ModelError, match="576"):
        Transcriber(model_copy)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelError, match="voxprompt export"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("name,change", [
    ("a list", lambda d: []),
    ("a string", lambda d: "encoder.onnx"),
    ("hashes as a list", lambda d: {**d, "sha256": []}),
    ("a number as text", lambda d: {**d, "encoder": {**d["encoder"], "vectors_per_second": "6.25"}}),
    ("a flag as a number", lambda d: {**d, "token_bound": {**d["token_bound"], "extra": 1.5}}),
    ("a section as a list", lambda d: {**d, "llm": [d["llm"]]}),
    ("a missing field", lambda d: {**d, "prompt": {"prefix": "x"}}),
    ("an unknown field", lambda d: {**d, "ctc": {**d["ctc"], "wieght": 0.3}}),
    ("stop words as text", lambda d: {**d, "prompt": {**d["prompt"], "stop": "<|im_end|>"}}),
])
def test_malformed_manifests_are_refused_at_load_in_one_line(tmp_path, default_model_dir, name, change):
    good = json.loads((default_model_dir / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(change(good)))
    with pytest.raises(ModelError) as info:
        load_manifest(tmp_path)
    assert "\n" not in str(info.value) and "manifest" in str(info.value)


def test_a_well_formed_manifest_reads_back_as_written(default_model_dir):
    from voxprompt.manifest import Manifest

    m = load_manifest(default_model_dir, verify=False)
    assert Manifest.from_dict(json.loads(m.to_json())) == m


def test_domain_adapters_outlive_a_rebuild_of_the_encoder_but_not_another_llm(default_model_dir):
    """An adapter is a LoRA on the LLM: the encoder built again (int8 weights, a new builder version)
    keeps it; other LLM weights, another own LoRA or another prompt do not."""
    from dataclasses import replace

    m = load_manifest(default_model_dir, verify=False)
    rebuilt = replace(m, sha256={**m.sha256, "encoder.onnx": "0" * 64},
                      provenance={**m.provenance, "recipe": "another builder"})
    assert rebuilt.adapter_base_id == m.adapter_base_id and rebuilt.model_id != m.model_id
    retrained = replace(m, sha256={**m.sha256, "llm.gguf": "1" * 64})
    own_lora = replace(m, llm=replace(m.llm, adapter="lora.gguf"))
    prompt = replace(m, prompt=replace(m.prompt, prefix=m.prompt.prefix + " "))
    assert len({m.adapter_base_id, retrained.adapter_base_id, own_lora.adapter_base_id, prompt.adapter_base_id}) == 4
