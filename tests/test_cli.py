"""`voxprompt transcribe` as a user runs it: batches with bad files, outputs on disk, interruption."""
import resource

import numpy as np
import pytest
import soundfile as sf

from conftest import silence
from conftest import run_voxprompt as voxprompt
from voxprompt.audio import SAMPLE_RATE


@pytest.fixture(scope="module")
def batch(tmp_path_factory, recording_audio, default_model_dir):
    d = tmp_path_factory.mktemp("batch")
    sf.write(d / "speech.wav", np.concatenate([silence(0.5), recording_audio, silence(0.5)]), SAMPLE_RATE)
    import soxr

    at_44k = soxr.resample(recording_audio, SAMPLE_RATE, 44100)
    sf.write(d / "speech44k.flac", np.stack([at_44k, at_44k], axis=1), 44100)  # stereo, 44.1 kHz
    sf.write(d / "quiet.ogg", silence(8.0), SAMPLE_RATE)
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.wav").write_text("shopping list: milk, eggs\n")
    bad = bytearray((d / "speech44k.flac").read_bytes())
    bad[len(bad) // 3: len(bad) // 3 + 2000] = bytes(2000)
    (d / "corrupt.flac").write_bytes(bytes(bad))
    return d


def test_batch_keeps_going_past_bad_files(batch, tmp_path):
    files = ["speech.wav", "missing.wav", "empty.wav", "notes.wav", "corrupt.flac", "quiet.ogg", "speech44k.flac"]
    result = voxprompt("transcribe", *[batch / f for f in files], "--output-dir", tmp_path, "--format", "srt")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("voxprompt: error:")]
    *per_file, summary = errors
    for name in ("missing.wav", "empty.wav", "notes.wav", "corrupt.flac"):
        assert sum(name in line for line in per_file) == 1, result.stderr
        assert name in summary
    assert "4 of 7 files failed" in summary
    assert "3 transcribed, 0 skipped (already complete), 4 failed" in result.stderr
    # good files are transcribed and written; silence gives an empty, valid transcript
    for name in ("speech", "speech44k"):
        srt = (tmp_path / f"{name}.srt").read_text()
        assert srt.startswith("1\n00:00:0") and "-->" in srt
    assert (tmp_path / "quiet.srt").read_text() == ""
    assert not (tmp_path / "missing.srt").exists() and not (tmp_path / "notes.srt").exists()
    # the transcript streams to stdout too
    assert "speech.wav" in result.stdout and "-> " in result.stdout


def test_segment_times_refer_to_the_original_audio(batch, tmp_path, recording_audio):
    padded = np.concatenate([silence(6.0), recording_audio, silence(1.0)])
    sf.write(tmp_path / "late.wav", padded, SAMPLE_RATE)
    result = voxprompt("transcribe", tmp_path / "late.wav", "--output-dir", tmp_path, "--format", "json", "--quiet")
    assert result.returncode == 0, result.stderr
    import json

    segments = json.loads((tmp_path / "late.json").read_text())["segments"]
    assert len(segments) == 1
    assert 5.6 <= segments[0]["start"] <= 6.1
    assert abs(segments[0]["end"] - (6.0 + len(recording_audio) / SAMPLE_RATE)) < 0.5


def test_unknown_model_directory_is_one_line(tmp_path, recording):
    result = voxprompt("transcribe", recording, "--model", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "voxprompt export" in result.stderr


@pytest.mark.slow
def test_two_hour_file_streams_in_bounded_memory(tmp_path, recording_audio, default_model_dir):
    path = tmp_path / "two_hours.flac"
    minute = silence(60.0)
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, format="FLAC") as f:
        for m in range(120):
            block = minute.copy()
            if m % 20 == 0:  # a few utterances spread over the two hours
                block[SAMPLE_RATE: SAMPLE_RATE + len(recording_audio)] = recording_audio
            f.write(block)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = voxprompt("transcribe", path, "--output-dir", tmp_path, "--format", "vtt", "--quiet", timeout=1800)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert result.returncode == 0, result.stderr
    vtt = (tmp_path / "two_hours.vtt").read_text()
    assert vtt.count("-->") == 6
    # the last utterance, placed at 100 min + 1 s, keeps its original time (less the pre-roll)
    last_start = vtt.strip().split("\n\n")[-1].split(" -->")[0]
    h, m, s = last_start.split(":")
    assert 6000.5 <= int(h) * 3600 + int(m) * 60 + float(s) <= 6001.5
    # the whole file decoded is 230 MB of float32 alone; streaming keeps the process far below that
    assert peak_mb < 600 or before / 1024 >= 600, f"peak RSS {peak_mb:.0f} MB"


def test_export_of_a_training_run_uses_its_projector_and_adapter(tmp_path):
    from voxprompt.export.default_model import TRAINED_DIR
    from voxprompt.manifest import load_manifest

    if not (TRAINED_DIR / "train-config.json").exists():
        pytest.skip("no training run committed")
    done = voxprompt("export", "trained", TRAINED_DIR, "--out", tmp_path / "m", "--quant", "q4_0")
    assert done.returncode == 0, done.stderr
    m = load_manifest(tmp_path / "m")
    assert m.provenance["projector"].startswith("trained")
    assert m.llm.quantization == "q4_0" and m.llm.adapter == "adapter.gguf"  # never merged into 4 bits


def test_a_run_trained_in_the_30_s_window_exports_an_encoder_that_encodes_in_it(tmp_path):
    import json
    import shutil

    from voxprompt.export.default_model import TRAINED_DIR
    from voxprompt.manifest import load_manifest
    from voxprompt.models.frontend import MAX_SAMPLES

    if not (TRAINED_DIR / "train-config.json").exists():
        pytest.skip("no training run committed")
    for window in (False, True):
        run = tmp_path / f"run-{window}"
        shutil.copytree(TRAINED_DIR, run)
        config = json.loads((run / "train-config.json").read_text())
        (run / "train-config.json").write_text(json.dumps({**config, "encoder_window": window}))
        done = voxprompt("export", "trained", run, "--out", tmp_path / f"m-{window}", "--quant", "q4_0")
        assert done.returncode == 0, done.stderr
        assert load_manifest(tmp_path / f"m-{window}").encoder.window_samples == (MAX_SAMPLES if window else 0)


def test_export_of_a_folder_that_is_no_training_run_is_one_line(tmp_path):
    done = voxprompt("export", "trained", tmp_path, "--out", tmp_path / "m")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "train-config.json" in done.stderr


def test_export_hf_without_its_parts_says_which_are_needed(tmp_path):
    done = voxprompt("export", "hf", "--encoder", tmp_path, "--out", tmp_path / "m")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--projector" in done.stderr and "--llm" in done.stderr
