#!/usr/bin/env python3
"""Make examples/demo.flac: three real recorded prompts (Debian's asterisk sounds) with pauses, stored
as 44.1 kHz stereo so the demo also shows resampling and down-mixing."""
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from voxprompt.audio import load_audio

SOUNDS = Path("/usr/share/asterisk/sounds/en")
PROMPTS = ("vm-intro", "agent-alreadyon", "conf-getpin")


def main(out: str = "examples/demo.flac") -> None:
    rate = 44100
    pause = np.zeros(int(1.2 * 16000), np.float32)
    parts = []
    for name in PROMPTS:
        parts += [load_audio(SOUNDS / f"{name}.wav"), pause]
    import soxr

    audio = soxr.resample(np.concatenate(parts), 16000, rate)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, np.stack([audio, audio * 0.9], axis=1), rate)
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
