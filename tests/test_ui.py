"""The Textual app, driven by a pilot while a wav plays into the virtual microphone."""
import os
import re

import numpy as np
import pytest
import soundfile as sf

from audio_env import play, start_virtual_microphone, stop_virtual_microphone
from conftest import silence
from voxprompt.audio import SAMPLE_RATE
from voxprompt.models.evaluate import wer

pytestmark = pytest.mark.slow


async def test_app_shows_partials_then_commits_finals(tmp_path, recording, recording_audio, transcriber,
                                                       asterisk_transcripts):
    env = start_virtual_microphone(tmp_path / "pulse")
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]  # PortAudio's ALSA pulse plugin reads it on open
    from voxprompt.microphone import find_device
    from voxprompt.ui import DictationApp

    wav = tmp_path / "speech.wav"
    sf.write(wav, np.concatenate([silence(0.5), recording_audio, silence(2.0)]), SAMPLE_RATE)
    app = DictationApp(transcriber, find_device("pulse"), tmp_path / "journal.txt")
    try:
        committed = await drive(app, wav, env)
    finally:
        stop_virtual_microphone(env)
    # every committed line is in the journal, cleared from the screen or not
    assert committed >= 1
    lines = (tmp_path / "journal.txt").read_text().splitlines()
    assert len(lines) == committed
    # the spoken words (the recording's published transcript, stage directions dropped)
    said = " ".join(line.split("] ", 1)[1] for line in lines)
    spoken = re.sub(r"\(.*?\)", "", asterisk_transcripts[recording.stem])
    assert wer([spoken], [said]) <= 0.7, (spoken, said)  # loose: see test_dictation


async def drive(app, wav, env) -> int:
    """Play the wav while the pilot watches; check pause and clear; return the lines committed."""
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause(1.0)
        player = play(wav, env)
        for _ in range(200):
            await pilot.pause(0.1)
            if "final" in app.events:
                break
        player.wait(timeout=30)
        assert "final" in app.events, app.events
        assert app.events.index("partial") < app.events.index("final")
        committed = len(app.lines)
        await pilot.press("p")
        assert app.paused and app.engine.paused.is_set()
        await pilot.press("p")
        await pilot.press("x")
        assert app.lines == []
        await pilot.press("q")
    return committed


@pytest.mark.parametrize("quit_key", ["q", "ctrl+c"])
async def test_every_footer_key_works_from_the_first_screen(tmp_path, transcriber, monkeypatch, quit_key):
    """The device picker once held the focus and took `q`: each binding is pressed on a fresh app."""
    env = start_virtual_microphone(tmp_path / "pulse")
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
    monkeypatch.chdir(tmp_path)
    from voxprompt.microphone import find_device
    from voxprompt.ui import DictationApp

    app = DictationApp(transcriber, find_device("pulse"), tmp_path / "journal.txt")
    try:
        async with app.run_test(size=(110, 30)) as pilot:
            await pilot.pause(0.5)
            app.lines.extend(["First line.", "Second line."])  # as if two finals had come
            assert {b.key for b in app.BINDINGS if b.show} == {"p", "c", "a", "s", "x", "d", "q"}
            await pilot.press("p")
            assert app.paused and app.engine.paused.is_set()
            await pilot.press("p")
            assert not app.paused and not app.engine.paused.is_set()
            await pilot.press("c")
            assert app.clipboard == "Second line."
            await pilot.press("a")
            assert app.clipboard == "First line.\nSecond line."
            await pilot.press("s")
            assert (tmp_path / "dictation-2-lines.txt").read_text() == "First line.\nSecond line.\n"
            await pilot.press("x")
            assert app.lines == []
            await pilot.press("d")  # no adapters given: it says how to give some, and nothing changes
            assert app.adapter_sets == [] and app.transcriber.adapters == ()
            await pilot.press(quit_key)
            await pilot.pause(0.5)
            assert app.return_code == 0 and app.dictation is None  # exited, microphone closed
    finally:
        stop_virtual_microphone(env)


async def test_d_switches_domain_adapters_live_without_reloading(tmp_path, default_model_dir, adapters_home):
    """Both adapters given: `d` goes to none, then to each alone; the base model is never reloaded."""
    from voxprompt.microphone import find_device
    from voxprompt.transcriber import Transcriber
    from voxprompt.ui import DictationApp

    env = start_virtual_microphone(tmp_path / "pulse")
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
    transcriber = Transcriber(default_model_dir, adapters=[str(adapters_home / "again"), str(adapters_home / "nothing")])
    model = transcriber.llm._model
    app = DictationApp(transcriber, find_device("pulse"), tmp_path / "journal.txt")
    try:
        async with app.run_test(size=(110, 30)) as pilot:
            await pilot.pause(0.5)
            for expected in ((), ("again",), ("nothing",), ("again", "nothing")):
                await pilot.press("d")
                switched = f"adapters: {', '.join(expected) or 'none'} (switched in"
                for _ in range(100):  # the engine applies it between utterances (here: silence), then says so
                    await pilot.pause(0.1)
                    if switched in str(app.query_one("#status").render()):
                        break
                assert tuple(a.name for a in transcriber.adapters) == expected
                assert switched in str(app.query_one("#status").render())
            assert transcriber.llm._model is model  # the same loaded model throughout
            await pilot.press("q")
            await pilot.pause(0.5)
    finally:
        transcriber.close()
        stop_virtual_microphone(env)
