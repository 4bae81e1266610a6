"""`voxprompt transcribe --ray`: workers on a local Ray cluster (2 processes, one model each) give the
local run's transcripts, lose nothing when one of them is killed, and resume like a local batch."""
import json
import os
import signal

import numpy as np
import pytest
import soundfile as sf

from conftest import ASTERISK_SOUNDS, silence
from conftest import run_voxprompt as voxprompt
from voxprompt.audio import SAMPLE_RATE, load_audio

PROMPTS = ["vm-intro", "vm-options", "vm-theperson", "vm-isunavail", "vm-goodbye", "vm-extension", "vm-password"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two recordings in nested folders: a long one (several chunks) and a short one."""
    d = tmp_path_factory.mktemp("archive")
    clips = [load_audio(ASTERISK_SOUNDS / f"{name}.wav") for name in PROMPTS]
    (d / "2024").mkdir()
    sf.write(d / "2024" / "long.wav", np.concatenate([x for c in clips * 2 for x in (c, silence(1.0))]), SAMPLE_RATE)
    sf.write(d / "short.wav", np.concatenate([clips[0], silence(0.5)]), SAMPLE_RATE)
    return d


def texts(folder) -> dict[str, list[str]]:
    return {p.name: [s["text"] for s in json.loads(p.read_text())["segments"]] for p in sorted(folder.rglob("*.json"))}


@pytest.fixture(scope="module")
def local_run(archive, tmp_path_factory, default_model_dir):
    out = tmp_path_factory.mktemp("local")
    result = voxprompt("transcribe", archive, "-r", "--output-dir", out, "--format", "json", "--quiet")
    assert result.returncode == 0, result.stderr
    return texts(out)


def test_ray_workers_give_the_local_transcripts_and_resume(archive, local_run, tmp_path):
    out = tmp_path / "ray"
    ray = ("transcribe", archive, "-r", "--ray", "--workers", "2", "--threads", "1", "--output-dir", out,
           "--format", "json", "--quiet")
    result = voxprompt(*ray)
    assert result.returncode == 0, result.stderr
    assert "Ray: 2 workers" in result.stderr
    assert texts(out) == local_run and sum(map(len, local_run.values())) >= 10
    # interrupted batches resume: the finished file is skipped, the missing one redone
    kept = (out / "2024" / "long.json").stat().st_mtime_ns
    (out / "short.json").unlink()
    again = voxprompt(*ray)
    assert again.returncode == 0, again.stderr
    assert "1 transcribed, 1 skipped (already complete), 0 failed" in again.stderr
    assert (out / "2024" / "long.json").stat().st_mtime_ns == kept
    assert texts(out) == local_run


def test_a_killed_worker_loses_only_its_unfinished_work(archive, local_run, default_model_dir):
    from voxprompt.files import FileDone, FileStarted, SegmentDone
    from voxprompt.ray_batch import RayTranscription, WorkerOptions

    engine = RayTranscription(default_model_dir, WorkerOptions(str(default_model_dir), threads=1), workers=2,
                              chunk_speech_s=10.0)
    try:
        killed = victim = engine._ray.get(engine.workers[0].pid.remote())
        found: dict[str, list[str]] = {}
        done = []
        for event in engine.files([archive / "2024" / "long.wav", archive / "short.wav"]):
            if isinstance(event, FileStarted) and not done and victim is not None:
                os.kill(victim, signal.SIGKILL)  # the tasks it holds are in flight now
                victim = None
            elif isinstance(event, SegmentDone) and event.segment.text:
                found.setdefault(event.path.stem + ".json", []).append(event.segment.text)
            elif isinstance(event, FileDone):
                assert event.error is None
                done.append(event.path)
        assert victim is None and len(done) == 2
        assert found == local_run
        assert engine._ray.get(engine.workers[0].pid.remote()) != killed  # Ray restarted it
    finally:
        engine.close()


def test_asking_for_more_workers_than_the_cluster_has_cpus_is_one_line(archive, tmp_path):
    result = voxprompt("transcribe", archive / "short.wav", "--ray", "--workers", str(2 * os.cpu_count() + 1))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("voxprompt: error:")]
    assert len(errors) == 1 and "lower --workers or --threads" in errors[0], result.stderr


def test_a_ray_cluster_that_does_not_start_is_one_line(monkeypatch, capsys, tmp_path, default_model_dir):
    """Seen on a loaded machine: Ray's node gave up after 30 s with a bare Exception, and a traceback."""
    import ray

    from voxprompt.cli import main

    def overloaded(**_):
        raise Exception("The current node timed out during startup. This could happen because some of the "
                        "raylet failed to startup or the GCS has become overloaded.")

    monkeypatch.setattr(ray, "init", overloaded)
    sf.write(tmp_path / "a.wav", silence(1.0), SAMPLE_RATE)
    assert main(["transcribe", str(tmp_path / "a.wav"), "--ray", "--output-dir", str(tmp_path / "out")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "Ray cluster did not start" in errors[0] and "without --ray" in errors[0], errors
