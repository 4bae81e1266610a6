#!/usr/bin/env python3
"""Save an SVG screenshot of `voxprompt dictate` (docs/dictate.svg) while real recordings play into
the virtual microphone."""
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_env import play, start_virtual_microphone, stop_virtual_microphone  # noqa: E402

from voxprompt.audio import SAMPLE_RATE, load_audio  # noqa: E402

PROMPTS = ("vm-intro", "agent-alreadyon", "conf-getpin")


async def main(out: Path) -> None:
    work = Path(tempfile.mkdtemp())
    env = start_virtual_microphone(work / "pulse")
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.microphone import find_device
    from voxprompt.transcriber import Transcriber
    from voxprompt.ui import DictationApp

    pause = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([x for p in PROMPTS for x in (load_audio(f"/usr/share/asterisk/sounds/en/{p}.wav"), pause)])
    sf.write(work / "speech.wav", audio, SAMPLE_RATE)
    app = DictationApp(Transcriber(ensure_default_model(log=lambda *_: None)), find_device("pulse"), work / "j.txt")
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.pause(1.0)
        player = play(work / "speech.wav", env)
        while player.poll() is None or app.events.count("final") < len(PROMPTS):
            await pilot.pause(0.1)
            if app.events.count("final") >= len(PROMPTS) or len(app.events) > 400:
                break
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(str(out))
        await pilot.press("q")
    stop_virtual_microphone(env)
    print(out)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dictate.svg")))
