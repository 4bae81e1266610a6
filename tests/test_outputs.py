"""Where transcripts go: every input its own output, every failure to write one line naming the file,
nothing half-written under a transcript's name, no temporary file shared between runs."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_voxprompt as voxprompt
from conftest import silence
from voxprompt.audio import SAMPLE_RATE
from voxprompt.outputs import NAME_MAX, Input, output_paths, partial_path


def test_inputs_sharing_a_stem_get_distinct_outputs(tmp_path):
    inputs = [Path("a/talk.wav"), Path("b/talk.wav"), Path("talk.flac"), Path("notes.wav"), Path("c/a/talk.wav")]
    names = {p: out.name for p, out in output_paths(list(map(Input, inputs)), tmp_path, "txt").items()}
    assert names[Path("notes.wav")] == "notes.txt"  # no collision: the plain stem
    assert names[Path("talk.flac")] == "talk.flac.txt"
    assert len(set(names.values())) == len(inputs)
    assert names[Path("b/talk.wav")] == "b_talk.wav.txt"


def test_the_same_input_twice_is_one_output(tmp_path):
    outputs = output_paths([Input(Path("x.wav")), Input(Path("x.wav"))], tmp_path, "srt")
    assert list(outputs.values()) == [tmp_path / "x.srt"]


def test_names_fit_the_file_system_with_their_temporary_suffix(tmp_path):
    longest = Path("é" * 100 + "a" * 51 + ".wav")  # 255 bytes: a legal name
    assert len(os.fsencode(longest.name)) == NAME_MAX
    out = output_paths([Input(longest)], tmp_path, "json")[longest]
    assert len(os.fsencode(partial_path(out).name + ".tmp")) <= NAME_MAX
    partial_path(out).with_name(partial_path(out).name + ".tmp").write_text("{}")  # the OS agrees
    assert out.name.startswith("é" * 100) and out.suffix == ".json"


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory, recording_audio):
    path = tmp_path_factory.mktemp("in") / "speech.wav"
    sf.write(path, np.concatenate([silence(0.3), recording_audio, silence(0.3)]), SAMPLE_RATE)
    return path


def test_awkward_names_are_all_transcribed_to_distinct_files(tmp_path, speech_file, default_model_dir):
    src = tmp_path / "in"
    for rel in ("a/talk.wav", "b/talk.wav", "talk.flac"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        data, rate = sf.read(speech_file)
        sf.write(src / rel, data, rate)
    long_name = src / ("x" * 251 + ".wav")  # 255 bytes
    shutil.copy(speech_file, long_name)
    latin1 = Path(os.fsdecode(bytes(src) + b"/caf\xe9.wav"))  # a name that is not UTF-8
    shutil.copy(speech_file, latin1)
    inputs = [src / "a/talk.wav", src / "b/talk.wav", src / "talk.flac", long_name, latin1]
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "voxprompt", "transcribe", *map(os.fsencode, inputs),
                             "--output-dir", str(out), "--format", "json"], capture_output=True, timeout=600)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr
    docs = [json.loads(p.read_text()) for p in out.iterdir()]
    assert len(docs) == 5 and all("message" in d["text"].lower() for d in docs)
    assert not [p for p in out.iterdir() if ".partial" in p.name]
    assert any(d["source"].endswith("caf\ufffd.wav") for d in docs)


def _namespace_ok() -> bool:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(not shutil.which("unshare") or not _namespace_ok(),
                                     reason="needs user and mount namespaces (unshare) for a private tmpfs")


def voxprompt_on_small_disk(mount: Path, options: str, fill: bool, listing: Path, *args) -> subprocess.CompletedProcess:
    """voxprompt ARGS with `mount` a private tmpfs (mount options, optionally filled to the brim); what was
    left in it afterwards is listed into `listing` (the tmpfs goes with the namespace)."""
    script = ('mount -t tmpfs -o "$1" tmpfs "$2" || exit 99; '
              '[ "$3" = fill ] && { dd if=/dev/zero of="$2/filler" bs=4k 2>/dev/null; }; '
              'shift 4; "$@"; rc=$?; ls -la "$MOUNT" > "$LISTING"; exit $rc')
    mount.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MOUNT": str(mount), "LISTING": str(listing)}
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", options,
                           str(mount), "fill" if fill else "-", "-", sys.executable, "-m", "voxprompt",
                           *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


@needs_namespace
def test_an_output_folder_that_cannot_be_written_is_one_line_before_the_model_loads(tmp_path, speech_file):
    mount = tmp_path / "ro"
    result = voxprompt_on_small_disk(mount, "ro,size=64k", False, tmp_path / "ls.txt",
                                     "transcribe", speech_file, "--output-dir", mount / "sub")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and str(mount / "sub") in lines[0]
    assert "encoder" not in result.stderr  # refused before loading the model


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, speech_file):
    (tmp_path / "out").write_text("not a folder")
    result = voxprompt("transcribe", speech_file, "--output-dir", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "is a file" in result.stderr


@needs_namespace
def test_a_full_disk_fails_each_file_in_one_line_and_leaves_nothing_behind(tmp_path, speech_file, default_model_dir):
    mount = tmp_path / "full"
    other = tmp_path / "other.wav"
    shutil.copy(speech_file, other)
    result = voxprompt_on_small_disk(mount, "size=64k", True, tmp_path / "ls.txt",
                                     "transcribe", speech_file, other, "--output-dir", mount, "--quiet")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("voxprompt: error:")]
    assert len(errors) == 3, result.stderr  # one per file, then the summary
    assert "speech.txt" in errors[0] and "no space left" in errors[0]
    assert "other.txt" in errors[1]
    left = (tmp_path / "ls.txt").read_text()
    assert "speech" not in left and "other" not in left and "partial" not in left, left


def test_two_runs_writing_the_same_transcript_both_complete(tmp_path, speech_file, default_model_dir):
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "voxprompt", "transcribe", str(speech_file), "--output-dir",
                               str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert [p.name for p in out.iterdir()] == ["speech.txt"]
    assert "message" in (out / "speech.txt").read_text().lower()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_transcript_is_kept_under_a_partial_name_not_the_final_one(tmp_path, recording_audio, signum,
                                                                                 default_model_dir):
    from conftest import as_in_a_terminal

    sf.write(tmp_path / "long.wav", np.tile(np.concatenate([recording_audio, silence(1.5)]), 40), SAMPLE_RATE)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "voxprompt", "transcribe", tmp_path / "long.wav",
                             "--output-dir", out, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=as_in_a_terminal, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any(p.read_text().count("\n") >= 2 for p in out.glob("*.partial")):
        time.sleep(0.2)
    proc.send_signal(signum)  # Ctrl-C in a terminal; SIGTERM as `kill` or a service manager stops it
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert stderr.count("\n") <= 3 and "Traceback" not in stderr
    assert not (out / "long.txt").exists()  # never a half transcript under the complete one's name
    kept = out / "long.txt.partial"
    assert f"is in {kept}" in stderr
    assert kept.read_text().count("\n") >= 2


def test_folders_are_walked_in_order_and_their_outputs_mirror_the_tree(tmp_path):
    from voxprompt.outputs import find_inputs

    for rel in ("b/two.flac", "a/one.wav", "a/deeper/three.mp3", "a/notes.txt", "a/one.flac"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    inputs = find_inputs([tmp_path], recursive=True)
    assert [i.path.relative_to(tmp_path).as_posix() for i in inputs] == [
        "a/deeper/three.mp3", "a/one.flac", "a/one.wav", "b/two.flac"]
    outputs = output_paths(inputs, tmp_path / "out", "txt")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in outputs.values()) == [
        "a/deeper/three.txt", "a/one.flac.txt", "a/one.wav.txt", "b/two.txt"]
    assert find_inputs([tmp_path / "a"], recursive=False) == [Input(tmp_path / "a")]  # read as given: one line


def test_an_interrupted_batch_resumes_without_redoing_finished_files(tmp_path, recording_audio, default_model_dir):
    from conftest import as_in_a_terminal

    src, out = tmp_path / "archive", tmp_path / "out"
    (src / "day1").mkdir(parents=True)
    for name in ("day1/a.wav", "day1/b.flac"):
        sf.write(src / name, np.concatenate([silence(0.3), recording_audio, silence(0.3)]), SAMPLE_RATE)
    sf.write(src / "z-long.wav", np.tile(np.concatenate([recording_audio, silence(1.5)]), 12), SAMPLE_RATE)
    command = [sys.executable, "-m", "voxprompt", "transcribe", str(src), "--recursive", "--output-dir", str(out),
               "--format", "json", "--quiet", "--parallel", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_in_a_terminal)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("z-long.json.*.partial")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # while the long file is being transcribed
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    finished = {p: p.stat().st_mtime_ns for p in (out / "day1/a.json", out / "day1/b.json")}
    assert not (out / "z-long.json").exists()
    (out / "day1/a.json.999999999.partial").write_text("{")  # left by a killed run: its pid is gone

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "1 transcribed, 2 skipped" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # nothing finished was redone
    doc = json.loads((out / "z-long.json").read_text())
    assert len(doc["segments"]) == 12 and doc["run"]["model"]
    assert not list(out.rglob("*.partial"))

    redo = subprocess.run([*command, "--beam", "1"], capture_output=True, text=True, timeout=600)
    assert "3 transcribed, 0 skipped" in redo.stderr  # other options: the JSON says they differ
