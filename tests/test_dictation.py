"""Live dictation over a real audio stack: wav files played into a PulseAudio null sink, recorded by
PortAudio as a microphone, segmented and decoded by the engine; partials come before finals and
every final is in the journal, even after an abrupt stop."""
import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from audio_env import play, start_virtual_microphone, stop_virtual_microphone
from conftest import as_in_a_terminal, silence
from voxprompt.audio import SAMPLE_RATE
from voxprompt.models.evaluate import wer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mic_env(tmp_path_factory):
    env = start_virtual_microphone(tmp_path_factory.mktemp("pulse"))
    yield env
    stop_virtual_microphone(env)


@pytest.fixture(scope="module")
def utterances(tmp_path_factory, recording_audio):
    """Two utterances with pauses, at 44.1 kHz stereo (the sink resamples as a real card would)."""
    path = tmp_path_factory.mktemp("play") / "two.wav"
    audio = np.concatenate([silence(1.0), recording_audio, silence(2.0), recording_audio, silence(2.5)])
    sf.write(path, audio, SAMPLE_RATE)
    return path, len(recording_audio) / SAMPLE_RATE


def test_headless_jsonl_partials_then_finals_and_journal(mic_env, utterances, tmp_path, default_model_dir,
                                                        recording, asterisk_transcripts):
    path, speech_s = utterances
    journal = tmp_path / "journal.txt"
    proc = subprocess.Popen([sys.executable, "-m", "voxprompt", "dictate", "--no-ui", "--jsonl", "--device", "pulse",
                             "--journal", journal], env=mic_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=as_in_a_terminal)
    try:
        time.sleep(4)  # model load and stream start
        player = play(path, mic_env)
        player.wait(timeout=60)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a dictation left running would share the microphone with the next test
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 2, err
    first_final = events.index(finals[0])
    assert any(e["type"] == "partial" for e in events[:first_final])
    for f in finals:
        assert abs((f["end"] - f["start"]) - speech_s) < 1.0  # segment covers the utterance
        assert f["latency_ms"] is not None and f["latency_ms"] > 0
        # each final's words, timed inside it, in order, spelling out its text
        assert "".join(w["word"] for w in f["words"]).strip() == f["text"]
        times = [t for w in f["words"] for t in (w["start"], w["end"])]
        assert times == sorted(times) and f["start"] <= times[0] and times[-1] <= f["end"]
    assert finals[1]["start"] - finals[0]["start"] == pytest.approx(speech_s + 2.0, abs=0.5)
    lines = journal.read_text().splitlines()
    assert len(lines) == sum(1 for f in finals if f["text"])
    # the spoken words (the recording's published transcript, stage directions dropped)
    spoken = re.sub(r"\(.*?\)", "", asterisk_transcripts[recording.stem])
    # loose on purpose (the model is far from perfect): silence, garbage or another prompt score 0.7 to 1
    said = [f["text"] for f in finals]
    assert wer([spoken] * len(said), said) <= 0.55, (spoken, said)


def test_abrupt_kill_keeps_the_journal(mic_env, utterances, tmp_path, default_model_dir):
    path, _ = utterances
    journal = tmp_path / "journal.txt"
    proc = subprocess.Popen([sys.executable, "-m", "voxprompt", "dictate", "--no-ui", "--device", "pulse",
                             "--journal", journal], env=mic_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(4)
    player = play(path, mic_env)
    deadline = time.time() + 60
    while time.time() < deadline and (not journal.exists() or not journal.read_text().strip()):
        time.sleep(0.1)
    proc.kill()  # no clean-up at all
    proc.wait()
    player.wait(timeout=60)
    assert journal.read_text().count("\n") >= 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopping_right_after_a_sentence_commits_it(mic_env, tmp_path, recording_audio, default_model_dir, signum):
    """Ctrl-C (or SIGTERM) the moment the speaker stops: the sentence is finalised and journaled first."""
    wav = tmp_path / "one.wav"
    sf.write(wav, np.concatenate([silence(0.5), recording_audio]), SAMPLE_RATE)  # no pause after it
    journal = tmp_path / "journal.txt"
    proc = subprocess.Popen([sys.executable, "-m", "voxprompt", "dictate", "--no-ui", "--jsonl", "--device", "pulse",
                             "--journal", journal], env=mic_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=as_in_a_terminal)
    try:
        while "listening on" not in proc.stderr.readline():
            assert proc.poll() is None, proc.stderr.read()
        play(wav, mic_env).wait(timeout=60)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == (0 if signum == signal.SIGINT else 143), err
    finals = [json.loads(line) for line in out.splitlines() if '"final"' in line]
    assert len(finals) == 1 and finals[0]["text"], (out, err)
    assert journal.read_text().count("\n") == 1 and finals[0]["text"] in journal.read_text()
